"""A resident's consent: one department, some document types, one purpose, a window, a count."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from eventsourcing.domain import event

from vault.aggregate import VaultAggregate
from vault.errors import (
    ConsentAlreadyRevoked,
    ConsentExpired,
    ConsentNotYetValid,
    ConsentRevoked,
    ConsentUsedUp,
    ConsentWrongDepartment,
    ConsentWrongDocType,
    ConsentWrongPurpose,
)


class ConsentStatus(StrEnum):
    ACTIVE = "active"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    USED_UP = "used-up"
    REVOKED = "revoked"


def consent_status(
    *,
    revoked_at: datetime | None,
    max_uses: int | None,
    uses: int,
    valid_from: datetime,
    valid_until: datetime,
    now: datetime,
) -> ConsentStatus:
    """Whether a consent is live at ``now``, and if not why: the one rule, for the
    aggregate and its read-model row alike (``projections.queries`` holds the SQL that
    mirrors it to a property test). Expiry is computed, never recorded."""
    if revoked_at is not None:
        return ConsentStatus.REVOKED
    if max_uses is not None and uses >= max_uses:
        return ConsentStatus.USED_UP
    if now < valid_from:
        return ConsentStatus.NOT_YET_VALID
    if now >= valid_until:
        return ConsentStatus.EXPIRED
    return ConsentStatus.ACTIVE


def covers(
    terms: ConsentScope, department: str, doc_type: str, purpose: str
) -> bool:
    """Whether a consent's terms name this department, document type and purpose (the one
    rule, for the aggregate and its read-model row alike)."""
    return (
        department == terms.department and doc_type in terms.doc_types
        and purpose == terms.purpose
    )


class ConsentScope(Protocol):
    """What a consent is for: a consent or its read-model row."""

    @property
    def department(self) -> str: ...

    @property
    def doc_types(self) -> tuple[str, ...]: ...

    @property
    def purpose(self) -> str: ...


class Consent(VaultAggregate):
    """Permission for one department to fetch certain documents for one purpose."""

    @event("Granted")
    def __init__(
        self,
        resident_id: str,
        department: str,
        doc_types: list[str],
        purpose: str,
        valid_from: datetime,
        valid_until: datetime,
        max_uses: int | None,
        granted_at: datetime,
        timestamp: datetime,
    ) -> None:
        self.resident_id = resident_id
        self.department = department
        self.doc_types = tuple(doc_types)
        self.purpose = purpose
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.max_uses = max_uses
        self.granted_at = granted_at
        self.uses = 0
        self.revoked_at: datetime | None = None

    def status(self, now: datetime) -> ConsentStatus:
        """The live status at ``now`` (see :func:`consent_status`)."""
        return consent_status(
            revoked_at=self.revoked_at, max_uses=self.max_uses, uses=self.uses,
            valid_from=self.valid_from, valid_until=self.valid_until, now=now,
        )

    @property
    def uses_left(self) -> int | None:
        return None if self.max_uses is None else max(0, self.max_uses - self.uses)

    def covers(self, department: str, doc_type: str, purpose: str) -> bool:
        """Whether the consent's terms name this department, document type and purpose."""
        return covers(self, department, doc_type, purpose)

    def check_allows(self, department: str, doc_type: str, purpose: str, now: datetime) -> None:
        """Raise the first reason this consent does not allow the use; return if it does."""
        status = self.status(now)
        if status is ConsentStatus.REVOKED:
            raise ConsentRevoked(f"consent {self.id} was revoked")
        if status is ConsentStatus.USED_UP:
            raise ConsentUsedUp(
                f"consent {self.id} has been used {self.uses} of {self.max_uses} times"
            )
        if status is ConsentStatus.NOT_YET_VALID:
            raise ConsentNotYetValid(
                f"consent {self.id} is valid from {self.valid_from.isoformat()}"
            )
        if status is ConsentStatus.EXPIRED:
            raise ConsentExpired(f"consent {self.id} expired at {self.valid_until.isoformat()}")
        if department != self.department:
            raise ConsentWrongDepartment(f"consent {self.id} was given to {self.department}")
        if doc_type not in self.doc_types:
            raise ConsentWrongDocType(f"consent {self.id} does not cover {doc_type}")
        if purpose != self.purpose:
            raise ConsentWrongPurpose(f"consent {self.id} is for {self.purpose}, not {purpose}")

    def use(
        self,
        *,
        department: str,
        doc_type: str,
        purpose: str,
        document_id: UUID,
        request_id: str,
        now: datetime,
    ) -> None:
        """Consume one use for fetching ``document_id``; raises if the consent does not allow it."""
        self.check_allows(department, doc_type, purpose, now)
        self._used(department, doc_type, purpose, document_id, request_id, now, timestamp=now)

    @event("Used")
    def _used(
        self,
        department: str,
        doc_type: str,
        purpose: str,
        document_id: UUID,
        request_id: str,
        at: datetime,
        timestamp: datetime,
    ) -> None:
        self._count_use()

    def _count_use(self) -> None:
        self.uses += 1

    def apply_use(self, version: int) -> None:
        """Apply a ``Used`` event known only by its version, undecoded: a use changes
        nothing but the count (and the time of the last change, which is in the event and
        so not known here). For folds of the whole log, where it is a common event."""
        self._count_use()
        self.version = version

    def return_use(self, access_id: UUID, at: datetime) -> None:
        """Give back the use a fetch took whose bytes never went out (the blob could not be
        read): a consent is charged only for what was delivered."""
        self._use_returned(access_id, at, timestamp=at)

    @event("UseReturned")
    def _use_returned(self, access_id: UUID, at: datetime, timestamp: datetime) -> None:
        self.uses -= 1

    def revoke(self, at: datetime) -> None:
        """The resident withdraws consent; no later use can succeed."""
        if self.revoked_at is not None:
            raise ConsentAlreadyRevoked(f"consent {self.id} was already revoked")
        self._revoked(at, timestamp=at)

    @event("Revoked")
    def _revoked(self, at: datetime, timestamp: datetime) -> None:
        self.revoked_at = at


USED_TOPIC = f"{__name__}:Consent.Used"
USE_RETURNED_TOPIC = f"{__name__}:Consent.UseReturned"
"""The stored topic of :class:`Consent`'s ``Used`` event (the class is made by ``@event``):
folds that only need the count read it without decoding (:meth:`Consent.apply_use`)."""
