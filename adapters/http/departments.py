"""Departments: an officer acts for the department named in their token."""

from __future__ import annotations

import asyncio
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from adapters.formats import ACCEPTED_TYPES
from adapters.http.contract import problems
from adapters.http.deps import (
    ClockDep,
    CurrentOfficer,
    DocumentsDep,
    FetchesDep,
    Fresh,
    PoliciesDep,
    ViewsDep,
    answer_position,
)
from adapters.http.downloads import (
    Disposition,
    first_pieces,
    read_response,
    requested_range,
)
from adapters.http.fields import (
    DocumentIdPath,
    PurposeQuery,
    ReasonField,
    ResidentIdPath,
    ResidentIdQuery,
    ServicePath,
    StrictIn,
)
from adapters.http.observability import Metrics
from adapters.http.paging import Cursor, Limit, Page, decode_cursor, paged
from adapters.http.schemas import (
    ConsentOut,
    DocumentOut,
    TracksOut,
    consent_entry_out,
    document_out,
    entry_out,
    tracks_out,
)
from adapters.http.uploads import UPLOAD_BODY, read_upload
from vault.errors import AccessDenied, DocumentNotFound
from vault.ids import check_resident_id
from vault.inputs import check_known
from vault.services.documents import Documents
from vault.services.fetches import Fetches

router = APIRouter(tags=["departments"])
class Revocation(StrictIn):
    reason: str = ReasonField


@router.get("/v1/residents/{resident_id}/documents")
def fetchable_documents(
    resident_id: ResidentIdPath,
    purpose: PurposeQuery,
    officer: CurrentOfficer,
    policies: PoliciesDep,
    views: ViewsDep,
    clock: ClockDep,
    fresh: Fresh,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DocumentOut]:
    """The resident's documents this department may fetch now for the purpose, newest first.

    A listing, read from the read models; the fetch itself decides on the records.
    """
    check_resident_id(resident_id)
    check_known("purpose", "service", purpose)
    entries = views.fetchable(
        resident_id,
        officer=officer.officer_id,
        department=officer.department,
        purpose=purpose,
        decision_point=policies.decision_point,
        now=clock.now(),
        limit=limit + 1,
        before=decode_cursor(cursor),
    )
    items, next_cursor = paged(entries, limit)
    return Page(items=[entry_out(e) for e in items], next_cursor=next_cursor)


@router.get("/v1/department/consents")
def consents_held(
    officer: CurrentOfficer,
    views: ViewsDep,
    clock: ClockDep,
    fresh: Fresh,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ConsentOut]:
    """The consents my department holds now: which residents, which document types, what for."""
    now = clock.now()
    held = views.consents_held(
        officer.department, now, after=decode_cursor(cursor), limit=limit + 1
    )
    items, next_cursor = paged(held, limit)
    return Page(items=[consent_entry_out(c, now) for c in items], next_cursor=next_cursor)


@router.get(
    "/v1/residents/{resident_id}/documents/{document_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {t: {} for t in ACCEPTED_TYPES}},
        206: {"description": "a range"},
        **problems(
            403, 404, 409, 410, 416, 503,
            why_403="denied, with the reasons; the attempt is recorded (X-Access-Id)",
            why_503="the blob store is unreachable; nothing was charged",
        ),
    },
)
async def fetch_document(
    resident_id: ResidentIdPath,
    document_id: DocumentIdPath,
    purpose: PurposeQuery,
    request: Request,
    officer: CurrentOfficer,
    fetches: FetchesDep,
    disposition: Disposition = "attachment",
) -> Response:
    """Fetch a document for a purpose; the access event is committed before any byte is sent,
    and a fetch is charged (its consent's use) only when its bytes can go out: a malformed
    range is refused before it is judged, one the document cannot satisfy is recorded
    undelivered, and if the bytes cannot be read the use is given back (503 when the blob
    store is unreachable)."""
    return await answer_fetch(
        request, fetches, disposition, officer=officer.officer_id,
        department=officer.department, resident_id=resident_id, document_id=document_id,
        purpose=purpose,
    )


async def answer_fetch(
    request: Request,
    fetches: Fetches,
    disposition: str,
    *,
    officer: str,
    department: str,
    resident_id: str,
    document_id: UUID | str,
    purpose: str,
    consent_id: UUID | None = None,
) -> Response:
    """A fetch judged and recorded (its access event committed before any byte is sent),
    counted in the metrics, and answered with the document's bytes or the range asked
    for; a denial is raised (:class:`AccessDenied`), counted too."""
    metrics: Metrics = request.app.state.metrics
    wanted = requested_range(request)
    try:
        # Judged, recorded and read in one hop: the bytes are read while the events are
        # committed, and handed over only after.
        read = await asyncio.wrap_future(
            fetches.submit_reading(
                first_pieces(wanted),
                officer=officer,
                department=department,
                resident_id=resident_id,
                document_id=document_id,
                purpose=purpose,
                request_id=request.state.request_id,
                byte_range=wanted,
                consent_id=consent_id,
            )
        )
    except AccessDenied as denied:
        metrics.decided(False, denied.reason_codes)
        raise
    metrics.decided(True, ())
    recorded = read.recorded
    headers = {
        "X-Access-Id": str(recorded.access.id),
        "X-Log-Position": str(recorded.position),
    }
    return read_response(recorded.document, read.value, headers, wanted, disposition)


@router.post(
    "/v1/residents/{resident_id}/documents", status_code=201, openapi_extra=UPLOAD_BODY,
    responses=problems(
        403, 410, 503,
        why_403="the policy does not let the department issue this type (recorded)",
        why_503="the blob store is unreachable; nothing was stored",
    ),
)
async def issue_document(
    resident_id: ResidentIdPath,
    request: Request,
    response: Response,
    officer: CurrentOfficer,
    documents: DocumentsDep,
) -> DocumentOut:
    """Issue a document into the resident's library (trust level A), where the policy lets
    the department issue the document type (403 otherwise). Every attempt is recorded.

    Beyond the schema: a parser of the file's type must read it through (415), and
    `expires_at` must lie ahead (422)."""
    upload = await read_upload(request, request.app.state.limits.upload)
    try:
        issued = await run_in_threadpool(
            lambda: documents.issue(
                officer.department,
                officer.officer_id,
                resident_id,
                upload.stream(),
                upload.details(),
                request_id=request.state.request_id,
            )
        )
    finally:
        upload.close()
    answer_position(response, issued.position)
    return document_out(issued.value)


@router.post(
    "/v1/residents/{resident_id}/documents/{document_id}/verify",
    responses=problems(404, 409, 410),
)
def verify_document(
    resident_id: ResidentIdPath,
    document_id: DocumentIdPath,
    request: Request,
    response: Response,
    officer: CurrentOfficer,
    documents: DocumentsDep,
) -> DocumentOut:
    """Checked against the original by an officer: trust level B, where the policy lets the
    department verify the document type (403 otherwise). Every attempt is recorded."""
    _belongs(documents, resident_id, document_id)
    verified = documents.verify(
        officer.department,
        officer.officer_id,
        document_id,
        request_id=request.state.request_id,
    )
    answer_position(response, verified.position)
    return document_out(verified.value)


@router.post(
    "/v1/residents/{resident_id}/documents/{document_id}/revoke",
    responses=problems(404, 409, 410, why_403="not the role, or not the issuing department"),
)
def revoke_document(
    resident_id: ResidentIdPath,
    document_id: DocumentIdPath,
    body: Revocation,
    response: Response,
    officer: CurrentOfficer,
    documents: DocumentsDep,
) -> DocumentOut:
    """The issuing department revokes a document it issued (e.g. cancelled at source)."""
    _belongs(documents, resident_id, document_id)
    revoked = documents.revoke(officer.department, document_id, body.reason)
    answer_position(response, revoked.position)
    return document_out(revoked.value)


@router.get(
    "/v1/services/{service_id}/tracks",
    responses=problems(
        403, why_403="the department does not handle the service, or holds no live consent "
        "of the resident's for it (also for a resident it cannot tell is registered)",
    ),
)
def tracks(
    service_id: ServicePath,
    resident_id: ResidentIdQuery,
    officer: CurrentOfficer,
    policies: PoliciesDep,
) -> TracksOut:
    """The fast-track tracks (reuse, missing-allowed, commitment, priority) that apply now,
    for a department that handles the service and holds the resident's live consent for it;
    the reasons name the requirements, not the resident's credit grade."""
    return tracks_out(
        resident_id,
        service_id,
        policies.tracks_for(resident_id, service_id, department=officer.department),
    )


def _belongs(documents: Documents, resident_id: str, document_id: str) -> None:
    if documents.find(document_id).resident_id != resident_id:
        raise DocumentNotFound(f"document {document_id} not found")
