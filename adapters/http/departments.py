"""Departments: an officer acts for the department named in their token."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from adapters.http.deps import CurrentOfficer, Fresh, VaultDep, ViewsDep, mark_position
from adapters.http.downloads import content_response
from adapters.http.observability import Metrics
from adapters.http.residents import UPLOAD_BODY, Cursor, Limit, document_details
from adapters.http.schemas import (
    ConsentOut,
    DocumentOut,
    Page,
    TracksOut,
    consent_entry_out,
    decode_cursor,
    document_out,
    entry_out,
    paged,
    tracks_out,
)
from adapters.http.uploads import ACCEPTED_TYPES, read_upload
from policy.scales import TrustLevel
from projections.queries import LibraryEntry, Views
from vault.document import Document
from vault.errors import AccessDenied, DocumentNotFound, ResidentErased, ResidentNotFound
from vault.ids import check_identifier, check_resident_id

router = APIRouter(tags=["departments"])
Purpose = Annotated[
    str, Query(min_length=1, max_length=64, description="the service, e.g. subsistence-allowance")
]


class Revocation(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@router.get("/v1/residents/{resident_id}/documents")
def fetchable_documents(
    resident_id: str,
    purpose: Purpose,
    officer: CurrentOfficer,
    vault: VaultDep,
    views: ViewsDep,
    fresh: Fresh,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DocumentOut]:
    """The resident's documents this department may fetch now for the purpose, newest first.

    A listing, read from the read models; the fetch itself decides on the records.
    """
    check_resident_id(resident_id)
    check_identifier("purpose", purpose)
    resident = views.resident(resident_id)
    if resident is None:
        raise ResidentNotFound(f"resident {resident_id} is not registered")
    if resident.erased:
        raise ResidentErased(f"resident {resident_id} was erased")
    now = vault.clock.now()
    point = vault.decision_point()
    held = views.consents_held(officer.department, now, resident_id=resident_id)
    covered = {t for c in held if c.purpose == purpose for t in c.doc_types}

    def fetchable(entry: LibraryEntry) -> bool:
        return point.decide(
            officer=officer.officer_id, department=officer.department,
            doc_type=entry.doc_type, purpose=purpose, grade=resident.grade,
            trust=TrustLevel(entry.trust_level),
        ).allowed

    library = _library_from(views, resident_id, decode_cursor(cursor), covered, now)
    items, next_cursor = paged(list(islice(filter(fetchable, library), limit + 1)), limit)
    return Page(items=[entry_out(e) for e in items], next_cursor=next_cursor)


def _library_from(
    views: Views, resident_id: str, before: int | None, doc_types: set[str], now: datetime
) -> Iterator[LibraryEntry]:
    """The resident's current documents of ``doc_types`` not expired ``now``, newest
    first from ``before``, read a page at a time for as long as the caller takes them."""
    while True:
        page = views.library(
            resident_id, limit=LIBRARY_PAGE, before=before, doc_types=doc_types,
            unexpired_at=now,
        )
        yield from page
        if len(page) < LIBRARY_PAGE:
            return
        before = page[-1].position


LIBRARY_PAGE = 200


@router.get("/v1/department/consents")
def consents_held(
    officer: CurrentOfficer, vault: VaultDep, views: ViewsDep, fresh: Fresh,
    limit: Limit = 50, cursor: Cursor = None,
) -> Page[ConsentOut]:
    """The consents my department holds now: which residents, which document types, what for."""
    now = vault.clock.now()
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
        403: {"description": "denied, with the reason; the attempt is recorded"},
    },
)
async def fetch_document(
    resident_id: str,
    document_id: str,
    purpose: Purpose,
    request: Request,
    officer: CurrentOfficer,
    vault: VaultDep,
) -> Response:
    """Fetch a document for a purpose; the access event is committed before any byte is sent."""
    metrics: Metrics = request.app.state.metrics
    try:
        recorded = await asyncio.wrap_future(
            vault.submit_fetch(
                officer=officer.officer_id,
                department=officer.department,
                resident_id=resident_id,
                document_id=document_id,
                purpose=purpose,
                request_id=request.state.request_id,
            )
        )
    except AccessDenied as denied:
        metrics.decided(False, denied.reason_codes)
        raise
    metrics.decided(True, ())
    headers = {
        "X-Access-Id": str(recorded.access.id),
        "X-Log-Position": str(recorded.position),
    }
    return await content_response(
        request, recorded.document, partial(vault.document_content, recorded.document), headers
    )


@router.post("/v1/residents/{resident_id}/documents", status_code=201, openapi_extra=UPLOAD_BODY)
async def issue_document(
    resident_id: str,
    request: Request,
    response: Response,
    officer: CurrentOfficer,
    vault: VaultDep,
) -> DocumentOut:
    """Issue a document into the resident's library (trust level A)."""
    upload = await read_upload(request, vault.max_document_bytes)

    def issue() -> Document:
        document = vault.issue_document(
            officer.department, officer.officer_id, resident_id, upload.stream(),
            document_details(upload),
        )
        mark_position(response, vault)
        return document

    try:
        document = await run_in_threadpool(issue)
    finally:
        upload.close()
    return document_out(document)


@router.post("/v1/residents/{resident_id}/documents/{document_id}/verify")
def verify_document(
    resident_id: str, document_id: str, response: Response, officer: CurrentOfficer,
    vault: VaultDep,
) -> DocumentOut:
    """Checked against the original by an officer: trust level B."""
    _belongs(vault, resident_id, document_id)
    document = vault.verify_document(officer.department, officer.officer_id, document_id)
    mark_position(response, vault)
    return document_out(document)


@router.post("/v1/residents/{resident_id}/documents/{document_id}/revoke")
def revoke_document(
    resident_id: str, document_id: str, body: Revocation, response: Response,
    officer: CurrentOfficer, vault: VaultDep,
) -> DocumentOut:
    """The issuing department revokes a document it issued (e.g. cancelled at source)."""
    _belongs(vault, resident_id, document_id)
    document = vault.revoke_document(officer.department, document_id, body.reason)
    mark_position(response, vault)
    return document_out(document)


@router.get("/v1/services/{service_id}/tracks")
def tracks(
    service_id: str,
    resident_id: Annotated[str, Query(min_length=1, max_length=64)],
    officer: CurrentOfficer,
    vault: VaultDep,
) -> TracksOut:
    """The fast-track tracks (reuse, missing-allowed, commitment, priority) that apply now."""
    return tracks_out(resident_id, service_id, vault.tracks_for(resident_id, service_id))


def _belongs(vault: VaultDep, resident_id: str, document_id: str) -> None:
    if vault.find_document(document_id).resident_id != resident_id:
        raise DocumentNotFound(f"document {document_id} not found")
