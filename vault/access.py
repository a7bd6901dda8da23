"""An access attempt: one department's try at one document, allowed or denied, recorded once."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from vault.aggregate import VaultAggregate
from vault.markers import Erased


class AccessAttempt(VaultAggregate):
    """What an auditor needs to re-make the decision: who, what, why, under which policy."""

    class Recorded(Aggregate.Created):
        # The resident's credit grade is personal, and so are the reasons that name it.
        personal_fields: ClassVar[tuple[str, ...]] = ("grade", "reasons")
        resident_id: str
        officer: str
        department: str
        document_id: UUID
        doc_type: str | None
        purpose: str
        consent_id: UUID | None
        grade: str
        trust_level: str | None
        allowed: bool
        reason_codes: list[str]
        reasons: list[str]
        policy_version: str
        rule: str | None
        request_id: str
        at: datetime

    def __init__(
        self,
        resident_id: str,
        officer: str,
        department: str,
        document_id: UUID,
        doc_type: str | None,
        purpose: str,
        consent_id: UUID | None,
        grade: str | Erased,
        trust_level: str | None,
        allowed: bool,
        reason_codes: list[str],
        reasons: list[str] | Erased,
        policy_version: str,
        rule: str | None,
        request_id: str,
        at: datetime,
    ) -> None:
        self.resident_id = resident_id
        self.officer = officer
        self.department = department
        self.document_id = document_id
        self.doc_type = doc_type
        self.purpose = purpose
        self.consent_id = consent_id
        self.grade = grade
        self.trust_level = trust_level
        self.allowed = allowed
        self.reason_codes = tuple(reason_codes)
        self.reasons: tuple[str, ...] | Erased = (
            reasons if isinstance(reasons, Erased) else tuple(reasons)
        )
        self.policy_version = policy_version
        self.rule = rule
        self.request_id = request_id
        self.at = at
        self.undelivered: str | None = None

    @property
    def delivered(self) -> bool:
        """An allowed fetch whose bytes went out (or were about to)."""
        return self.allowed and self.undelivered is None

    def undeliver(self, reason: str, at: datetime) -> None:
        """Note that an allowed fetch's bytes never went out, and why (a stable code, such
        as ``range-not-satisfiable`` or ``blob-store-unavailable``)."""
        if self.undelivered is None:
            self._undelivered(reason, at, timestamp=at)

    @event("Undelivered")
    def _undelivered(self, reason: str, at: datetime, timestamp: datetime) -> None:
        self.undelivered = reason

    @classmethod
    def record(cls, **fields: Any) -> AccessAttempt:
        """Record an attempt; its event is stamped with the attempt's time (``at``)."""
        return cls._create(cls.Recorded, timestamp=fields["at"], **fields)


ACCESS_TOPIC = f"{__name__}:AccessAttempt.Recorded"
