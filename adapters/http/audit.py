"""Auditors: every access attempt, and any resident's state as it stood at any time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from adapters.http.deps import CurrentAuditor, VaultDep
from adapters.http.residents import Cursor, Limit
from adapters.http.schemas import (
    AccessOut,
    Page,
    ReplayOut,
    access_out,
    consent_out,
    document_out,
    page,
)

router = APIRouter(prefix="/v1/audit", tags=["auditors"])


@router.get("/accesses")
def accesses(
    auditor: CurrentAuditor,
    vault: VaultDep,
    resident_id: Annotated[str | None, Query(max_length=64)] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AccessOut]:
    """Access events, oldest first, filtered by resident, department and time [since, until)."""
    attempts = vault.access_attempts(
        resident_id=resident_id, department=department, since=since, until=until
    )
    items, next_cursor = page(attempts, limit, cursor)
    return Page(items=[access_out(a) for a in items], next_cursor=next_cursor)


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
