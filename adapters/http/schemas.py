"""What the API reads and writes, as JSON; converters from the domain objects."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from adapters.http.fields import (
    DepartmentField,
    DocTypesField,
    Instant,
    ServiceField,
    StrictIn,
    Whole,
)
from adapters.http.paging import Page
from policy.catalogue import display_name
from policy.decision import TrackDecision
from projections.ledger import Checkpoint, InclusionProof
from projections.queries import AccessEntry, ConsentEntry, LibraryEntry
from vault.consent import Consent
from vault.document import Document
from vault.ids import RESIDENT_ID_PATTERN
from vault.inputs import MAX_SEQUENCE, MAX_USES_LIMIT
from vault.markers import Erased
from vault.services.audit import AcceptanceMismatch, Mismatch


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
    attributes: dict[str, str] | None = Field(
        default=None, description="what the document says, for forms to be filled from "
        "(反填); in a single document's answer only, and null once the resident is erased",
    )


class ConsentIn(StrictIn):
    department: str = DepartmentField
    doc_types: list[str] = DocTypesField
    purpose: str = ServiceField
    expires_at: Instant = Field(description="when the consent ends (RFC 3339, with offset)")
    valid_from: Instant | None = Field(default=None, description="when it starts (default now)")
    max_uses: Annotated[
        Whole | None,
        WithJsonSchema({"anyOf": [
            {"type": "integer", "minimum": 1, "maximum": MAX_USES_LIMIT}, {"type": "null"},
        ]}),
    ] = Field(default=None, ge=1, le=MAX_USES_LIMIT, description="how many fetches it allows")


class ConsentOut(BaseModel):
    consent_id: str
    resident_id: str = Field(description="whose consent it is")
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


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class CheckpointOut(BaseModel):
    """A signed tree head: Ed25519 over ``b"civicvault checkpoint v1\\n" || tree_size
    (8 bytes) || timestamp in ms (8 bytes) || root_hash``, integers big-endian."""

    tree_size: int
    root_hash: str = Field(description="lower-case hex")
    timestamp: datetime
    key_id: str
    signature: str = Field(description="lower-case hex Ed25519 signature")


class InclusionOut(BaseModel):
    leaf_index: int = Field(description="the event's position in the log minus one")
    tree_size: int
    leaf_hash: str = Field(description="lower-case hex SHA-256(0x00 || leaf)")
    inclusion_path: list[str] = Field(description="lower-case hex node hashes, leaf upward")


class ConsistencyOut(BaseModel):
    first: int
    second: int
    consistency_path: list[str] = Field(description="lower-case hex node hashes (RFC 9162)")


class LedgerEntryOut(InclusionOut):
    """What a resident needs to check that an entry is in the signed ledger."""

    leaf: str = Field(
        description="base64 leaf data: len(topic) (2 bytes) || topic || originator id "
        "(16 bytes) || version (8 bytes) || stored state (personal fields sealed)"
    )


class AccessOut(BaseModel):
    access_id: str
    event: int = Field(description="the access event's position in the log")
    action: Literal["fetch", "issue", "verify"] = Field(
        description="a fetch of the document, or an attestation: issuing it into the "
        "library (trust level A) or verifying it against its original (trust level B)"
    )
    officer: str
    department: str
    resident_id: str
    document_id: str
    doc_type: str | None
    purpose: str | None = Field(description="the service a fetch was for; null otherwise")
    consent_id: str | None
    decision: Literal["allowed", "denied"]
    undelivered: str | None = Field(
        default=None,
        description="why an allowed fetch's bytes never went out (range-not-satisfiable, "
        "blob-store-unavailable, ...): it was charged nothing",
    )
    reasons: list[str]
    explanations: list[str] | None = Field(description="null once the resident is erased")
    policy_version: str
    rule: str | None
    request_id: str
    at: datetime


class LoggedAccessOut(AccessOut):
    ledger: LedgerEntryOut | None = Field(
        description="inclusion in the page's checkpoint; null if the entry is newer than it"
    )


class AccessLogPage(Page[LoggedAccessOut]):
    checkpoint: CheckpointOut | None = Field(
        description="the signed tree head every entry's inclusion proof leads to"
    )


class MismatchOut(BaseModel):
    event: int
    access_id: str
    at: datetime
    resident_id: str
    officer: str
    department: str
    document_id: str
    purpose: str
    policy_version: str
    recorded: Literal["allowed", "denied"]
    decided: Literal["allowed", "denied"]
    recorded_reasons: list[str]
    decided_reasons: list[str]


class AcceptanceMismatchOut(BaseModel):
    event: int
    application_id: str
    at: datetime
    resident_id: str
    service_id: str
    policy_version: str
    catalogue_version: str
    problems: list[str] = Field(
        description="`tracks` (not those earned then), `materials` (not the service's), or "
        "`SOURCE:DOC_TYPE` for a material that could not be taken so (`library:id-card`)"
    )


class ReadjudicationOut(BaseModel):
    checked: int = Field(description="access events in the window, decided again")
    unverifiable: int = Field(description="of which the resident was erased (grade shredded)")
    events: int = Field(description="events read to rebuild the state of each time")
    mismatches: list[MismatchOut]
    truncated: bool = Field(description="true when more mismatches were found than listed")
    acceptances: int = Field(
        description="applications accepted in the window, judged again: tracks and materials"
    )
    acceptances_unverifiable: int = Field(description="of which the resident was erased")
    acceptance_mismatches: list[AcceptanceMismatchOut] = Field(
        description="acceptances the policy, catalogue and library of their time do not bear "
        "out (the first 1,000)"
    )


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


class GradeRowIn(StrictIn):
    resident_id: str = Field(pattern=RESIDENT_ID_PATTERN)
    grade: Literal["A", "B", "C", "D"]
    effective_at: Instant
    sequence: Annotated[
        Whole, WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_SEQUENCE})
    ] = Field(ge=0, le=MAX_SEQUENCE, description="newer rows have larger ones")


class GradeBatchIn(StrictIn):
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
        attributes=dict(document.attributes) if isinstance(document.attributes, dict) else None,
    )


def entry_out(entry: LibraryEntry) -> DocumentOut:
    return DocumentOut(
        document_id=entry.document_id,
        doc_type=entry.doc_type,
        doc_type_name=display_name("doc_type", entry.doc_type),
        title=entry.title,
        filename=entry.filename,
        content_type=entry.content_type,
        size=entry.size,
        sha256=entry.sha256,
        trust_level=entry.trust_level,  # type: ignore[arg-type]
        issuer=entry.issuer,
        status=entry.status,  # type: ignore[arg-type]
        expires_at=entry.expires_at,
        created_at=entry.created_at,
        replaces=entry.replaces,
        superseded_by=entry.superseded_by,
        reuse_count=entry.reuse_count,
    )


def consent_entry_out(entry: ConsentEntry, now: datetime) -> ConsentOut:
    return ConsentOut(
        consent_id=entry.consent_id,
        resident_id=entry.resident_id,
        department=entry.department,
        department_name=display_name("department", entry.department),
        doc_types=list(entry.doc_types),
        purpose=entry.purpose,
        purpose_name=display_name("service", entry.purpose),
        valid_from=entry.valid_from,
        expires_at=entry.valid_until,
        max_uses=entry.max_uses,
        uses=entry.uses,
        status=entry.status(now),  # type: ignore[arg-type]
        granted_at=entry.granted_at,
        revoked_at=entry.revoked_at,
    )


def access_entry_out(entry: AccessEntry) -> AccessOut:
    return AccessOut(
        access_id=entry.access_id,
        event=entry.position,
        action=entry.action,  # type: ignore[arg-type]
        officer=entry.officer,
        department=entry.department,
        resident_id=entry.resident_id,
        document_id=entry.document_id,
        doc_type=entry.doc_type,
        purpose=entry.purpose,
        consent_id=entry.consent_id,
        decision="allowed" if entry.allowed else "denied",
        undelivered=entry.undelivered,
        reasons=list(entry.reason_codes),
        explanations=list(entry.reasons) if entry.reasons is not None else None,
        policy_version=entry.policy_version,
        rule=entry.rule,
        request_id=entry.request_id,
        at=entry.at,
    )


def consent_out(consent: Consent, now: datetime) -> ConsentOut:
    return ConsentOut(
        consent_id=str(consent.id),
        resident_id=consent.resident_id,
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


def checkpoint_out(checkpoint: Checkpoint) -> CheckpointOut:
    return CheckpointOut.model_validate(checkpoint.to_json())


def inclusion_out(proof: InclusionProof) -> InclusionOut:
    return InclusionOut(
        leaf_index=proof.leaf_index,
        tree_size=proof.tree_size,
        leaf_hash=proof.leaf_hash.hex(),
        inclusion_path=[h.hex() for h in proof.inclusion_path],
    )


def acceptance_mismatch_out(m: AcceptanceMismatch) -> AcceptanceMismatchOut:
    return AcceptanceMismatchOut(
        event=m.event, application_id=str(m.application_id), at=m.at,
        resident_id=m.resident_id, service_id=m.service_id, policy_version=m.policy_version,
        catalogue_version=m.catalogue_version, problems=list(m.problems),
    )


def mismatch_out(m: Mismatch) -> MismatchOut:
    return MismatchOut(
        event=m.event,
        access_id=str(m.access_id),
        at=m.at,
        resident_id=m.resident_id,
        officer=m.officer,
        department=m.department,
        document_id=str(m.document_id),
        purpose=m.purpose,
        policy_version=m.policy_version,
        recorded="allowed" if m.recorded_allowed else "denied",
        decided="allowed" if m.decided_allowed else "denied",
        recorded_reasons=list(m.recorded_reasons),
        decided_reasons=list(m.decided_reasons),
    )
