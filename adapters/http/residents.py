"""Residents, acting on their own data only."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from adapters.formats import ACCEPTED_TYPES
from adapters.http.access_log import logged_accesses
from adapters.http.contract import problems
from adapters.http.deps import (
    ClockDep,
    ConsentsDep,
    CurrentResident,
    DocumentsDep,
    Fresh,
    LedgerDep,
    ResidentEvenErased,
    ResidentsDep,
    ViewsDep,
    answer_position,
)
from adapters.http.downloads import Disposition, content_response, requested_range
from adapters.http.fields import ConsentIdPath, DocumentIdPath, named_as_sent
from adapters.http.paging import Cursor, Limit, Page, decode_cursor, paged
from adapters.http.schemas import (
    AccessLogPage,
    ConsentIn,
    ConsentOut,
    DocumentOut,
    GrantedConsentOut,
    consent_entry_out,
    consent_out,
    document_out,
    entry_out,
)
from adapters.http.uploads import UPLOAD_BODY, read_upload
from vault.inputs import ConsentRequest

router = APIRouter(prefix="/v1/me", tags=["residents"])
_GONE = "I am erased, or I withdrew this document"


class Erasure(BaseModel):
    resident_id: str
    erased: bool


@router.post(
    "/documents", status_code=201, openapi_extra=UPLOAD_BODY,
    responses=problems(503, why_503="the blob store is unreachable; nothing was stored"),
)
async def upload_document(
    request: Request, response: Response, resident: CurrentResident, documents: DocumentsDep
) -> DocumentOut:
    """Hand a document over once; it joins the library at trust level C.

    Beyond the schema: a parser of the file's type must read it through (415), and
    `expires_at` must lie ahead (422)."""
    upload = await read_upload(request, request.app.state.limits.upload)
    try:
        filed = await run_in_threadpool(
            lambda: documents.submit(resident, upload.stream(), upload.details())
        )
    finally:
        upload.close()
    answer_position(response, filed.position)
    return document_out(filed.value)


@router.get("/documents")
def library(
    resident: CurrentResident, views: ViewsDep, fresh: Fresh,
    limit: Limit = 50, cursor: Cursor = None,
) -> Page[DocumentOut]:
    """The library: current documents, newest first."""
    entries = views.library(resident, limit=limit + 1, before=decode_cursor(cursor))
    items, next_cursor = paged(entries, limit)
    return Page(items=[entry_out(e) for e in items], next_cursor=next_cursor)


@router.get("/documents/{document_id}", responses=problems(404, 410, why_410=_GONE))
def document(
    document_id: DocumentIdPath, resident: CurrentResident, documents: DocumentsDep
) -> DocumentOut:
    return document_out(documents.document(resident, document_id))


@router.get(
    "/documents/{document_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {t: {} for t in ACCEPTED_TYPES}},
        206: {"description": "a range"},
        **problems(404, 410, 416, 503, why_410=_GONE, why_503="the blob store is unreachable"),
    },
)
async def document_content(
    document_id: DocumentIdPath,
    request: Request,
    resident: CurrentResident,
    documents: DocumentsDep,
    disposition: Disposition = "attachment",
) -> Response:
    found = await run_in_threadpool(documents.document, resident, document_id)
    return await content_response(
        request, found, partial(documents.content, found), {}, requested_range(request),
        disposition,
    )


@router.delete("/documents/{document_id}", responses=problems(404, 409, 410, why_410=_GONE))
def withdraw_document(
    document_id: DocumentIdPath,
    response: Response,
    resident: CurrentResident,
    documents: DocumentsDep,
) -> DocumentOut:
    """Withdraw a document: no department can fetch it again."""
    withdrawn = documents.withdraw(resident, document_id)
    answer_position(response, withdrawn.position)
    return document_out(withdrawn.value)


@router.post("/consents", status_code=201)
def grant_consent(
    body: ConsentIn, response: Response, resident: CurrentResident, consents: ConsentsDep,
    clock: ClockDep,
) -> GrantedConsentOut:
    """Let one department fetch some document types for one purpose, until a time.

    Beyond the schema: `expires_at` must lie ahead and after `valid_from` (422)."""
    with named_as_sent({"valid_until": "expires_at"}):
        granted = consents.grant(
            resident,
            ConsentRequest(
                department=body.department,
                doc_types=tuple(body.doc_types),
                purpose=body.purpose,
                valid_until=body.expires_at,
                valid_from=body.valid_from,
                max_uses=body.max_uses,
            ),
        )
    answer_position(response, granted.position)
    out = consent_out(granted.consent, clock.now())
    return GrantedConsentOut(**out.model_dump(), receipt=granted.receipt)


@router.get("/consents")
def consents(
    resident: CurrentResident, views: ViewsDep, clock: ClockDep, fresh: Fresh,
    limit: Limit = 50, cursor: Cursor = None,
) -> Page[ConsentOut]:
    """Every consent I have given, newest first, with its live status."""
    now = clock.now()
    entries = views.consents(resident, limit=limit + 1, before=decode_cursor(cursor))
    items, next_cursor = paged(entries, limit)
    return Page(items=[consent_entry_out(c, now) for c in items], next_cursor=next_cursor)


@router.post("/consents/{consent_id}/revoke", responses=problems(404, 409))
def revoke_consent(
    consent_id: ConsentIdPath, response: Response, resident: CurrentResident, consents: ConsentsDep,
    clock: ClockDep,
) -> ConsentOut:
    """Once this answers, no fetch under the consent succeeds."""
    revoked = consents.revoke(resident, consent_id)
    answer_position(response, revoked.position)
    return consent_out(revoked.value, clock.now())


@router.get("/access-log")
def access_log(
    resident: CurrentResident, views: ViewsDep, ledger: LedgerDep, fresh: Fresh,
    limit: Limit = 50, cursor: Cursor = None,
) -> AccessLogPage:
    """Every access attempt on my data, newest first: who, department, purpose, outcome.

    Each entry the latest checkpoint covers carries its leaf and inclusion proof, so that
    anyone can check it is in the signed ledger (see ``/.well-known/checkpoint-keys.json``).
    """
    entries = views.access_log(resident, limit=limit + 1, before=decode_cursor(cursor))
    items, next_cursor = paged(entries, limit)
    return logged_accesses(items, ledger, next_cursor)


@router.post("/erase")
def erase(response: Response, resident: ResidentEvenErased, residents: ResidentsDep) -> Erasure:
    """Crypto-shred everything personal: nothing of mine can be read again. Safe to repeat:
    asked again (a lost answer, say), it answers the same and records nothing more."""
    resident_id, _ = resident
    answer_position(response, residents.erase(resident_id).position)
    return Erasure(resident_id=resident_id, erased=True)
