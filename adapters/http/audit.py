"""Auditors: every access attempt, and any resident's state as it stood at any time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from adapters.http.deps import CurrentAuditor, Fresh, VaultDep, ViewsDep
from adapters.http.residents import Cursor, Limit
from adapters.http.schemas import (
    AccessOut,
    Page,
    ReplayOut,
    access_entry_out,
    consent_out,
    decode_cursor,
    document_out,
    paged,
)
from vault.ids import check_identifier, check_resident_id
from vault.inputs import check_aware

router = APIRouter(prefix="/v1/audit", tags=["auditors"])


@router.get("/accesses")
def accesses(
    auditor: CurrentAuditor,
    views: ViewsDep,
    fresh: Fresh,
    resident_id: Annotated[str | None, Query(max_length=64)] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AccessOut]:
    """Access events, oldest first, filtered by resident, department and time [since, until)."""
    if resident_id is not None:
        check_resident_id(resident_id)
    if department is not None:
        check_identifier("department", department)
    for name, moment in (("since", since), ("until", until)):
        if moment is not None:
            check_aware(name, moment)
    entries = views.accesses(
        limit=limit + 1, after=decode_cursor(cursor), resident_id=resident_id,
        department=department, since=since, until=until,
    )
    items, next_cursor = paged(entries, limit)
    return Page(items=[access_entry_out(a) for a in items], next_cursor=next_cursor)


@router.get("/replay")
def replay(
    auditor: CurrentAuditor,
    vault: VaultDep,
    resident_id: Annotated[str, Query(min_length=1, max_length=64)],
    at: datetime,
) -> ReplayOut:
    """The resident's documents, consents and grade as they stood at ``at``, from the events."""
    state = vault.replay_resident(resident_id, at)
    return ReplayOut(
        resident_id=resident_id,
        at=at,
        grade=state.resident.grade_label,
        documents=[document_out(d) for d in state.documents],
        consents=[consent_out(c, at) for c in state.consents],
    )


class FigureDocuments(BaseModel):
    doc_type: str
    trust_level: str
    count: int


class FigureFetches(BaseModel):
    department: str
    outcome: str
    reason: str
    count: int


class Figures(BaseModel):
    documents: list[FigureDocuments]
    fetches: list[FigureFetches]


@router.get("/figures")
def figures(auditor: CurrentAuditor, views: ViewsDep, fresh: Fresh) -> Figures:
    """For the dashboard: current documents by type and trust level; fetches by department,
    outcome and first reason."""
    return Figures.model_validate(views.figures())
