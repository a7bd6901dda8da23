"""Residents, acting on their own data only."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from adapters.http.deps import (
    CurrentResident,
    Fresh,
    LedgerDep,
    VaultDep,
    ViewsDep,
    mark_position,
)
from adapters.http.downloads import content_response
from adapters.http.schemas import (
    MAX_PAGE,
    AccessLogPage,
    ConsentIn,
    ConsentOut,
    DocumentOut,
    GrantedConsentOut,
    LedgerEntryOut,
    LoggedAccessOut,
    Page,
    access_entry_out,
    b64,
    checkpoint_out,
    consent_entry_out,
    consent_out,
    decode_cursor,
    document_out,
    entry_out,
    inclusion_out,
    paged,
)
from adapters.http.uploads import ACCEPTED_TYPES, Upload, read_upload
from vault.document import Document
from vault.errors import InvalidInput
from vault.inputs import ConsentRequest, DocumentDetails

router = APIRouter(prefix="/v1/me", tags=["residents"])
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(max_length=200)]

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "doc_type", "title"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": f"one of {', '.join(ACCEPTED_TYPES)}",
                        },
                        "doc_type": {"type": "string", "example": "id-card"},
                        "title": {"type": "string", "example": "居民身份证"},
                        "expires_at": {"type": "string", "format": "date-time"},
                    },
                }
            }
        },
    }
}


class Erasure(BaseModel):
    resident_id: str
    erased: bool


def document_details(upload: Upload) -> DocumentDetails:
    """Check an upload's form fields (the file's type against its bytes) as document details."""
    expires = upload.fields.get("expires_at")
    try:
        expires_at = datetime.fromisoformat(expires) if expires else None
    except ValueError:
        raise InvalidInput("expires_at", "must be an RFC 3339 date-time") from None
    return DocumentDetails(
        doc_type=upload.fields.get("doc_type", ""),
        title=upload.fields.get("title", ""),
        content_type=upload.content_type(),
        filename=upload.filename,
        expires_at=expires_at,
    )


@router.post("/documents", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload_document(
    request: Request, response: Response, resident: CurrentResident, vault: VaultDep
) -> DocumentOut:
    """Hand a document over once; it joins the library at trust level C."""
    upload = await read_upload(request, vault.max_document_bytes)

    def submit() -> Document:
        document = vault.submit_document(resident, upload.stream(), document_details(upload))
        mark_position(response, vault)
        return document

    try:
        document = await run_in_threadpool(submit)
    finally:
        upload.close()
    return document_out(document)


@router.get("/documents")
def library(
    resident: CurrentResident, views: ViewsDep, fresh: Fresh,
    limit: Limit = 50, cursor: Cursor = None,
) -> Page[DocumentOut]:
    """The library: current documents, newest first."""
    entries = views.library(resident, limit=limit + 1, before=decode_cursor(cursor))
    items, next_cursor = paged(entries, limit)
    return Page(items=[entry_out(e) for e in items], next_cursor=next_cursor)


@router.get("/documents/{document_id}")
def document(document_id: str, resident: CurrentResident, vault: VaultDep) -> DocumentOut:
    return document_out(vault.document(resident, document_id))


@router.get(
    "/documents/{document_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {t: {} for t in ACCEPTED_TYPES}}, 206: {"description": "a range"}},
)
async def document_content(
    document_id: str, request: Request, resident: CurrentResident, vault: VaultDep
) -> Response:
    found = await run_in_threadpool(vault.document, resident, document_id)
    return await content_response(request, found, partial(vault.document_content, found), {})


@router.delete("/documents/{document_id}")
def withdraw_document(
    document_id: str, response: Response, resident: CurrentResident, vault: VaultDep
) -> DocumentOut:
    """Withdraw a document: no department can fetch it again."""
    document = vault.withdraw_document(resident, document_id)
    mark_position(response, vault)
    return document_out(document)


@router.post("/consents", status_code=201)
def grant_consent(
    body: ConsentIn, response: Response, resident: CurrentResident, vault: VaultDep
) -> GrantedConsentOut:
    """Let one department fetch some document types for one purpose, until a time."""
    granted = vault.grant_consent(
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
    mark_position(response, vault)
    out = consent_out(granted.consent, vault.clock.now())
    return GrantedConsentOut(**out.model_dump(), receipt=granted.receipt)


@router.get("/consents")
def consents(
    resident: CurrentResident, views: ViewsDep, vault: VaultDep, fresh: Fresh,
    limit: Limit = 50, cursor: Cursor = None,
) -> Page[ConsentOut]:
    """Every consent I have given, newest first, with its live status."""
    now = vault.clock.now()
    entries = views.consents(resident, limit=limit + 1, before=decode_cursor(cursor))
    items, next_cursor = paged(entries, limit)
    return Page(items=[consent_entry_out(c, now) for c in items], next_cursor=next_cursor)


@router.post("/consents/{consent_id}/revoke")
def revoke_consent(
    consent_id: str, response: Response, resident: CurrentResident, vault: VaultDep
) -> ConsentOut:
    """Once this answers, no fetch under the consent succeeds."""
    consent = vault.revoke_consent(resident, consent_id)
    mark_position(response, vault)
    return consent_out(consent, vault.clock.now())


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
    checkpoint = ledger.latest_checkpoint()
    covered = [a.position for a in items if checkpoint and a.position <= checkpoint.tree_size]
    proofs = ledger.inclusions(covered, checkpoint.tree_size) if checkpoint and covered else {}
    leaves = ledger.records(covered)
    return AccessLogPage(
        items=[
            LoggedAccessOut(
                **access_entry_out(a).model_dump(),
                ledger=(
                    LedgerEntryOut(
                        **inclusion_out(proofs[a.position]).model_dump(),
                        leaf=b64(leaves[a.position]),
                    )
                    if a.position in proofs and a.position in leaves
                    else None
                ),
            )
            for a in items
        ],
        next_cursor=next_cursor,
        checkpoint=checkpoint_out(checkpoint) if checkpoint else None,
    )


@router.post("/erase")
def erase(response: Response, resident: CurrentResident, vault: VaultDep) -> Erasure:
    """Crypto-shred everything personal: nothing of mine can be read again."""
    vault.erase_resident(resident)
    mark_position(response, vault)
    return Erasure(resident_id=resident, erased=True)
