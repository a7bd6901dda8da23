"""A document in a resident's library: submitted or issued, verified, superseded, revoked."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from policy.scales import TrustLevel
from vault.aggregate import VaultAggregate
from vault.errors import (
    AlreadyTrusted,
    DocumentRevoked,
    DocumentSuperseded,
    DocumentWithdrawn,
    NotTheIssuer,
)
from vault.markers import Erased, Sealed


class DocumentStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    REVOKED = "revoked"
    WITHDRAWN = "withdrawn"


def has_expired(expires_at: datetime | None, now: datetime) -> bool:
    """Whether a document with this expiry has expired at ``now`` (the one rule, for the
    aggregate and its read-model row alike)."""
    return expires_at is not None and now >= expires_at


class Document(VaultAggregate):
    """The metadata of one sealed document; the bytes live, encrypted, in the blob store."""

    class Filed(Aggregate.Created):
        """Common shape of the two ways a document enters a library."""

        personal_fields: ClassVar[tuple[str, ...]] = (
            "title", "filename", "content_sha256", "attributes",
        )
        class_version: ClassVar[int] = 2
        resident_id: str
        doc_type: str
        title: str
        filename: str | None
        content_type: str
        size: int
        content_sha256: str
        blob_key: str
        sealed_key: str
        expires_at: datetime | None
        trust_level: str
        issuer: str | None
        officer: str | None
        replaces: UUID | None
        attributes: dict[str, str]
        """What the document says, for forms to be filled from (反填); since version 2."""

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """A document filed before documents carried attributes carries none (or, once
            its resident is erased, erased ones, as its other personal fields)."""
            if "attributes" not in state:
                title = state.get("title")
                state["attributes"] = title if isinstance(title, Erased | Sealed) else {}

    class Submitted(Filed):
        """The resident uploaded it (trust level C)."""

    class Issued(Filed):
        """A department issued it into the resident's library (trust level A)."""

    def __init__(
        self,
        resident_id: str,
        doc_type: str,
        title: str,
        filename: str | None,
        content_type: str,
        size: int,
        content_sha256: str,
        blob_key: str,
        sealed_key: str,
        expires_at: datetime | None,
        trust_level: str,
        issuer: str | None,
        officer: str | None,
        replaces: UUID | None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self.resident_id = resident_id
        self.attributes: dict[str, str] | Erased = attributes if attributes is not None else {}
        self.doc_type = doc_type
        self.title: str | Erased = title
        self.filename: str | Erased | None = filename
        self.content_type = content_type
        self.size = size
        self.content_sha256: str | Erased = content_sha256
        self.blob_key = blob_key
        self.sealed_key = sealed_key
        self.expires_at = expires_at
        self.trust_level = TrustLevel(trust_level)
        self.issuer = issuer
        self.officer = officer
        self.replaces = replaces
        self.status = DocumentStatus.ACTIVE
        self.superseded_by: UUID | None = None
        self.verified_by: str | None = None
        self.ended_at: datetime | None = None
        self.end_reason: str | Erased | None = None
        self.reuse_count = 0

    @classmethod
    def submit(cls, document_id: UUID, *, at: datetime, **fields: Any) -> Document:
        """A resident's own upload at ``at``: trust level C, no issuer."""
        fields.setdefault("attributes", {})
        return cls._create(
            cls.Submitted,
            id=document_id,
            timestamp=at,
            trust_level=TrustLevel.C.value,
            issuer=None,
            officer=None,
            **fields,
        )

    @classmethod
    def issue(
        cls, document_id: UUID, *, department: str, officer: str, at: datetime, **fields: Any
    ) -> Document:
        """Issued at ``at`` by the department that is the source of the record: trust
        level A."""
        fields.setdefault("attributes", {})
        return cls._create(
            cls.Issued,
            id=document_id,
            timestamp=at,
            trust_level=TrustLevel.A.value,
            issuer=department,
            officer=officer,
            **fields,
        )

    @property
    def is_active(self) -> bool:
        return self.status is DocumentStatus.ACTIVE

    def is_expired(self, now: datetime) -> bool:
        return has_expired(self.expires_at, now)

    def check_available(self) -> None:
        """Raise the reason this document can no longer be used, if there is one."""
        if self.status is DocumentStatus.WITHDRAWN:
            raise DocumentWithdrawn(f"document {self.id} was withdrawn by its owner")
        if self.status is DocumentStatus.REVOKED:
            raise DocumentRevoked(f"document {self.id} was revoked by {self.issuer}")
        if self.status is DocumentStatus.SUPERSEDED:
            raise DocumentSuperseded(
                f"document {self.id} was superseded by {self.superseded_by}"
            )

    def verify(self, department: str, officer: str, at: datetime) -> None:
        """An officer checked it against the original: trust level B."""
        self.check_available()
        if self.trust_level.at_least(TrustLevel.B):
            raise AlreadyTrusted(
                f"document {self.id} is already at trust level {self.trust_level.value}"
            )
        self._verified(department, officer, at, timestamp=at)

    @event("Verified")
    def _verified(self, department: str, officer: str, at: datetime, timestamp: datetime) -> None:
        self.trust_level = TrustLevel.B
        self.verified_by = department

    def reuse(self, department: str, purpose: str, access_id: UUID, at: datetime) -> None:
        """A department fetched it instead of asking the resident to hand it over again."""
        self.check_available()
        self._reused(department, purpose, access_id, at, timestamp=at)

    @event("Reused")
    def _reused(
        self, department: str, purpose: str, access_id: UUID, at: datetime, timestamp: datetime
    ) -> None:
        self._count_reuse()

    def _count_reuse(self) -> None:
        self.reuse_count += 1

    def apply_reuse(self, version: int) -> None:
        """Apply a ``Reused`` event known only by its version, undecoded: a reuse changes
        nothing but the count (and the time of the last change, which is in the event and
        so not known here). For folds of the whole log, where it is a common event."""
        self._count_reuse()
        self.version = version

    def return_reuse(self, access_id: UUID, at: datetime) -> None:
        """Take back the reuse of a fetch whose bytes never went out."""
        self._reuse_returned(access_id, at, timestamp=at)

    @event("ReuseReturned")
    def _reuse_returned(self, access_id: UUID, at: datetime, timestamp: datetime) -> None:
        self.reuse_count -= 1

    def supersede(self, by: UUID, at: datetime) -> None:
        """A newer version of the same document replaces this one."""
        self.check_available()
        self._superseded(by, at, timestamp=at)

    @event("Superseded")
    def _superseded(self, by: UUID, at: datetime, timestamp: datetime) -> None:
        self.status = DocumentStatus.SUPERSEDED
        self.superseded_by = by
        self.ended_at = at

    def revoke(self, department: str, reason: str, at: datetime) -> None:
        """The issuing department withdraws its document (e.g. it was cancelled at source)."""
        if self.issuer != department:
            raise NotTheIssuer(f"only the issuing department may revoke document {self.id}")
        self.check_available()
        self._revoked(self.resident_id, department, reason, at, timestamp=at)

    class Revoked(Aggregate.Event):
        personal_fields: ClassVar[tuple[str, ...]] = ("reason",)
        resident_id: str
        department: str
        reason: str
        at: datetime

    @event(Revoked)
    def _revoked(
        self, resident_id: str, department: str, reason: str, at: datetime, timestamp: datetime
    ) -> None:
        self.status = DocumentStatus.REVOKED
        self.ended_at = at
        self.end_reason = reason

    def withdraw(self, at: datetime) -> None:
        """The resident takes the document out of their library; no department can fetch it."""
        self.check_available()
        self._withdrawn(at, timestamp=at)

    @event("Withdrawn")
    def _withdrawn(self, at: datetime, timestamp: datetime) -> None:
        self.status = DocumentStatus.WITHDRAWN
        self.ended_at = at


REUSED_TOPIC = f"{__name__}:Document.Reused"
REUSE_RETURNED_TOPIC = f"{__name__}:Document.ReuseReturned"
"""The stored topic of :class:`Document`'s ``Reused`` event (the class is made by ``@event``):
folds that only need the count read it without decoding (:meth:`Document.apply_reuse`)."""
