"""Auditors: every access attempt, any resident's state as it stood at any time, every
decision made again, and the ledger's checkpoints and proofs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from adapters.http.contract import problems
from adapters.http.deps import AuditDep, CurrentAuditor, Fresh, LedgerDep, ViewsDep
from adapters.http.fields import (
    Instant,
    OptionalDepartment,
    OptionalInstant,
    OptionalResidentId,
    ResidentIdQuery,
    WholeBetween,
)
from adapters.http.paging import Cursor, Limit, Page, decode_cursor, paged
from adapters.http.problems import Problem
from adapters.http.schemas import (
    AccessOut,
    CheckpointOut,
    ConsistencyOut,
    InclusionOut,
    ReadjudicationOut,
    ReplayOut,
    acceptance_mismatch_out,
    access_entry_out,
    checkpoint_out,
    consent_out,
    document_out,
    inclusion_out,
    mismatch_out,
)
from projections.ledger import Ledger
from projections.merkle import ProofError
from vault.errors import InvalidInput
from vault.ids import check_resident_id
from vault.inputs import check_aware, check_known

router = APIRouter(prefix="/v1/audit", tags=["auditors"])
Counted = Annotated[int, WholeBetween(1)]
Size = Annotated[int, WholeBetween(0)]
MAX_MISMATCHES = 1000


@router.get("/accesses")
def accesses(
    auditor: CurrentAuditor,
    views: ViewsDep,
    fresh: Fresh,
    resident_id: OptionalResidentId = None,
    department: OptionalDepartment = None,
    since: OptionalInstant = None,
    until: OptionalInstant = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AccessOut]:
    """Access events, oldest first, filtered by resident, department and time [since, until)."""
    if resident_id is not None:
        check_resident_id(resident_id)
    if department is not None:
        check_known("department", "department", department)
    for name, moment in (("since", since), ("until", until)):
        if moment is not None:
            check_aware(name, moment)
    entries = views.accesses(
        limit=limit + 1,
        after=decode_cursor(cursor),
        resident_id=resident_id,
        department=department,
        since=since,
        until=until,
    )
    items, next_cursor = paged(entries, limit)
    return Page(items=[access_entry_out(a) for a in items], next_cursor=next_cursor)


@router.get("/replay", responses=problems(404, why_404="no such resident"))
def replay(
    auditor: CurrentAuditor,
    audit: AuditDep,
    resident_id: ResidentIdQuery,
    at: Instant,
) -> ReplayOut:
    """The resident's documents, consents and grade as they stood at ``at``, from the events."""
    state = audit.replay_resident(resident_id, at)
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


@router.post("/readjudicate")
def readjudicate(
    auditor: CurrentAuditor,
    audit: AuditDep,
    since: OptionalInstant = None,
    until: OptionalInstant = None,
) -> ReadjudicationOut:
    """Every access recorded in [since, until) decided again, on the residents, documents and
    consents as they stood just before it in the log and with the policy version it
    recorded; lists each decision that does not match (the first 1,000). Every
    application accepted in the window is judged again too: the tracks the resident
    earned then, and each material under the catalogue and library of its time."""
    report = audit.readjudicate(since, until)
    return ReadjudicationOut(
        checked=report.checked,
        unverifiable=report.unverifiable,
        events=report.events,
        mismatches=[mismatch_out(m) for m in report.mismatches[:MAX_MISMATCHES]],
        truncated=len(report.mismatches) > MAX_MISMATCHES
        or len(report.acceptance_mismatches) > MAX_MISMATCHES,
        acceptances=report.acceptances,
        acceptances_unverifiable=report.acceptances_unverifiable,
        acceptance_mismatches=[
            acceptance_mismatch_out(m) for m in report.acceptance_mismatches[:MAX_MISMATCHES]
        ],
    )


def _held(ledger: Ledger, size: int) -> None:
    held = ledger.size()
    if size > held:
        raise Problem(
            404,
            "not-in-ledger",
            "Not in the ledger",
            f"the ledger holds {held} events; it has no tree of {size}",
        )


@router.get("/checkpoints/latest", responses=problems(404, why_404="nothing signed yet"))
def latest_checkpoint(auditor: CurrentAuditor, ledger: LedgerDep) -> CheckpointOut:
    """The newest signed tree head. Its signature verifies with the key of ``key_id`` at
    ``/.well-known/checkpoint-keys.json``."""
    checkpoint = ledger.latest_checkpoint()
    if checkpoint is None:
        raise Problem(404, "no-checkpoint", "No checkpoint yet", "no event has been signed yet")
    return checkpoint_out(checkpoint)


@router.get(
    "/proofs/inclusion", responses=problems(404, why_404="the ledger holds no tree of `size`")
)
def inclusion_proof(
    auditor: CurrentAuditor,
    ledger: LedgerDep,
    event: Annotated[Counted, Query(description="the event's position in the log")],
    size: Annotated[Counted, Query(description="the tree size, e.g. a checkpoint's")],
) -> InclusionOut:
    """Proof that event N is leaf N-1 of the tree of ``size`` events (RFC 9162).

    Beyond the schema: `event` must not exceed `size` (422)."""
    _held(ledger, size)
    if event > size:
        raise InvalidInput("event", f"event {event} is not in a tree of {size} events")
    return inclusion_out(ledger.inclusion(event, size))


@router.get(
    "/proofs/consistency", responses=problems(404, why_404="the ledger holds no tree of `to`")
)
def consistency_proof(
    auditor: CurrentAuditor,
    ledger: LedgerDep,
    first: Annotated[Size, Query(alias="from", description="the older tree size")],
    second: Annotated[Size, Query(alias="to", description="the newer tree size")],
) -> ConsistencyOut:
    """Proof that the tree of ``to`` events extends the tree of ``from`` (RFC 9162).

    Beyond the schema: `from` must not exceed `to` (422)."""
    _held(ledger, second)
    try:
        path = ledger.consistency(first, second)
    except ProofError as e:
        raise InvalidInput("from", str(e)) from None
    return ConsistencyOut(first=first, second=second, consistency_path=[h.hex() for h in path])
