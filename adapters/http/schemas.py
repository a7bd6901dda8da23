"""What the API reads and writes, as JSON; converters from the domain objects."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from policy.catalogue import display_name
from policy.decision import TrackDecision
from vault.access import AccessAttempt
from vault.consent import Consent
from vault.document import Document
from vault.errors import InvalidInput
from vault.personal import Erased

T = TypeVar("T")
MAX_PAGE = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null at the end"
    )


class DocumentOut(BaseModel):
    document_id: str
    doc_type: str
    doc_type_name: str
    title: str | None = Field(description="null once the resident is erased")
    filename: str | None
    content_type: str
    size: int
    sha256: str | None
    trust_level: Literal["A", "B", "C", "D"]
    issuer: str | None
    status: Literal["active", "superseded", "revoked", "withdrawn"]
    expires_at: datetime | None
    created_at: datetime
    replaces: str | None
    superseded_by: str | None
    reuse_count: int = Field(description="fetches by departments instead of a resubmission")


class ConsentIn(BaseModel):
    department: str
    doc_types: list[str]
    purpose: str
    expires_at: datetime = Field(description="when the consent ends (RFC 3339, with offset)")
    valid_from: datetime | None = None
    max_uses: int | None = None


class ConsentOut(BaseModel):
    consent_id: str
    department: str
    department_name: str
    doc_types: list[str]
    purpose: str
    purpose_name: str
    valid_from: datetime
    expires_at: datetime
    max_uses: int | None
    uses: int
    status: Literal["active", "not-yet-valid", "expired", "used-up", "revoked"]
    granted_at: datetime
    revoked_at: datetime | None


class GrantedConsentOut(ConsentOut):
    receipt: str = Field(description="compact JWS (EdDSA) consent receipt")


class AccessOut(BaseModel):
    access_id: str
    officer: str
    department: str
    resident_id: str
    document_id: str
    doc_type: str | None
    purpose: str
    consent_id: str | None
    decision: Literal["allowed", "denied"]
    reasons: list[str]
    explanations: list[str] | None = Field(description="null once the resident is erased")
    policy_version: str
    rule: str | None
    request_id: str
    at: datetime


class TrackReasonOut(BaseModel):
    code: str
    text: str


class TracksOut(BaseModel):
    service_id: str
    service_name: str
    resident_id: str
    tracks: list[str]
    reasons: list[TrackReasonOut]
    policy_version: str


class GradeRowIn(BaseModel):
    resident_id: str
    grade: str
    effective_at: datetime
    sequence: int


class GradeBatchIn(BaseModel):
    updates: list[GradeRowIn] = Field(max_length=100_000)


class GradeOutcomeOut(BaseModel):
    applied: int
    stale: int
    erased: int


class ReplayOut(BaseModel):
    resident_id: str
    at: datetime
    grade: str | None
    documents: list[DocumentOut]
    consents: list[ConsentOut]


def document_out(document: Document) -> DocumentOut:
    return DocumentOut(
        document_id=str(document.id),
        doc_type=document.doc_type,
        doc_type_name=display_name("doc_type", document.doc_type),
        title=_shown(document.title),
        filename=_shown(document.filename),
        content_type=document.content_type,
        size=document.size,
        sha256=_shown(document.content_sha256),
        trust_level=document.trust_level.value,
        issuer=document.issuer,
        status=document.status.value,
        expires_at=document.expires_at,
        created_at=document.created_on,
        replaces=str(document.replaces) if document.replaces else None,
        superseded_by=str(document.superseded_by) if document.superseded_by else None,
        reuse_count=document.reuse_count,
    )


def consent_out(consent: Consent, now: datetime) -> ConsentOut:
    return ConsentOut(
        consent_id=str(consent.id),
        department=consent.department,
        department_name=display_name("department", consent.department),
        doc_types=list(consent.doc_types),
        purpose=consent.purpose,
        purpose_name=display_name("service", consent.purpose),
        valid_from=consent.valid_from,
        expires_at=consent.valid_until,
        max_uses=consent.max_uses,
        uses=consent.uses,
        status=consent.status(now).value,
        granted_at=consent.granted_at,
        revoked_at=consent.revoked_at,
    )


def access_out(access: AccessAttempt) -> AccessOut:
    return AccessOut(
        access_id=str(access.id),
        officer=access.officer,
        department=access.department,
        resident_id=access.resident_id,
        document_id=str(access.document_id),
        doc_type=access.doc_type,
        purpose=access.purpose,
        consent_id=str(access.consent_id) if access.consent_id else None,
        decision="allowed" if access.allowed else "denied",
        reasons=list(access.reason_codes),
        explanations=None if isinstance(access.reasons, Erased) else list(access.reasons),
        policy_version=access.policy_version,
        rule=access.rule,
        request_id=access.request_id,
        at=access.at,
    )


def tracks_out(resident_id: str, service: str, decision: TrackDecision) -> TracksOut:
    return TracksOut(
        service_id=service,
        service_name=display_name("service", service),
        resident_id=resident_id,
        tracks=list(decision.tracks),
        reasons=[TrackReasonOut(code=r.code, text=r.text) for r in decision.reasons],
        policy_version=decision.policy_version,
    )


def _shown(value: str | Erased | None) -> str | None:
    return None if isinstance(value, Erased) else value


def page(items: Sequence[T], limit: int, cursor: str | None) -> tuple[list[T], str | None]:
    """One page of an ordered list, with an opaque cursor for the next."""
    start = decode_cursor(cursor)
    end = start + limit
    return list(items[start:end]), encode_cursor(end) if end < len(items) else None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["o"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidInput("cursor", "is not a cursor this API gave out") from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("cursor", "is not a cursor this API gave out")
    return offset
