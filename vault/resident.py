"""A resident: registered on first use, graded by the credit platform, erasable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.utils import get_topic

from policy.scales import UNRATED, Grade
from vault.aggregate import VaultAggregate
from vault.errors import ResidentErased
from vault.ids import resident_aggregate_id
from vault.markers import Erased


class Resident(VaultAggregate):
    """One resident's identity, credit grade and the index of their library and consents.

    Every event is stamped with the business clock's time (``timestamp``), so that the
    state at any time (``Store.as_of``) is read by the same clock that judged it."""

    @staticmethod
    def create_id(resident_id: str) -> UUID:
        return resident_aggregate_id(resident_id)

    @event("Registered")
    def __init__(self, resident_id: str, timestamp: datetime) -> None:
        self.resident_id = resident_id
        self.grade: Grade | None = None
        self.grade_sequence: int | None = None
        self.grade_effective_at: datetime | None = None
        self.document_ids: list[UUID] = []
        self.consent_ids: list[UUID] = []
        self.consent_scopes: dict[UUID, tuple[str, str]] = {}
        self.erased_at: datetime | None = None

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    @property
    def grade_label(self) -> str:
        """The grade as shown to people: A–D, or ``unrated``."""
        return self.grade.value if self.grade is not None else UNRATED

    def record_grade(
        self, grade: Grade, sequence: int, effective_at: datetime, at: datetime
    ) -> bool:
        """Take a grade from the credit platform at ``at``; an older or equal sequence is
        stale (False)."""
        self._check_not_erased()
        if self.grade_sequence is not None and sequence <= self.grade_sequence:
            return False
        self._grade_recorded(self.resident_id, grade.value, sequence, effective_at, timestamp=at)
        return True

    class GradeRecorded(Aggregate.Event):
        """A credit grade is personal: it is sealed with the resident's key."""

        personal_fields: ClassVar[tuple[str, ...]] = ("grade",)
        resident_id: str
        grade: str
        sequence: int
        effective_at: datetime

    @event(GradeRecorded)
    def _grade_recorded(
        self,
        resident_id: str,
        grade: str | Erased,
        sequence: int,
        effective_at: datetime,
        timestamp: datetime,
    ) -> None:
        # After erasure the sealed grade reads back as ERASED; the sequence still orders.
        self.grade = Grade(grade) if isinstance(grade, str) else None
        self.grade_sequence = sequence
        self.grade_effective_at = effective_at

    def file_document(self, document_id: UUID, at: datetime) -> None:
        """Add a document to the resident's library index."""
        self._check_not_erased()
        self._document_filed(document_id, timestamp=at)

    @event("DocumentFiled")
    def _document_filed(self, document_id: UUID, timestamp: datetime) -> None:
        self.document_ids.append(document_id)

    def file_consent(self, consent_id: UUID, department: str, purpose: str, at: datetime) -> None:
        """Add a consent to the resident's index of consents."""
        self._check_not_erased()
        self._consent_filed(consent_id, department, purpose, timestamp=at)

    @event("ConsentFiled")
    def _consent_filed(
        self, consent_id: UUID, department: str, purpose: str, timestamp: datetime
    ) -> None:
        self.consent_ids.append(consent_id)
        self.consent_scopes[consent_id] = (department, purpose)

    def consents_for(self, department: str, purpose: str) -> list[UUID]:
        """The consents given to this department for this purpose (whatever their state)."""
        return [c for c in self.consent_ids if self.consent_scopes[c] == (department, purpose)]

    def erase(self, at: datetime) -> None:
        """Mark the resident erased; their key is shredded right after."""
        self._check_not_erased()
        self._erased(at, timestamp=at)

    @event("Erased")
    def _erased(self, at: datetime, timestamp: datetime) -> None:
        self.erased_at = at

    def _check_not_erased(self) -> None:
        if self.is_erased:
            raise ResidentErased(f"resident {self.resident_id} was erased")

    @dataclass(frozen=True)
    class Snapshot(LibrarySnapshot):
        """A resident as of a version, so that a load replays only the events after it.

        The grade is personal, so it is kept out of ``state`` and sealed with the
        resident's key like the event that recorded it: once the key is shredded it reads
        back as erased, and the resident loads with no grade, as replaying the events
        would give. Everything else in ``state`` is in clear in the events too.
        """

        personal_fields: ClassVar[tuple[str, ...]] = ("grade",)
        resident_id: str
        grade: str | Erased | None

        @classmethod
        def take(cls, aggregate: Any) -> Self:
            """The snapshot of a resident's state (as the library takes one, the grade
            apart)."""
            if not isinstance(aggregate, Resident):
                raise TypeError(f"not a resident: {type(aggregate).__name__}")
            state = {
                name: value
                for name, value in vars(aggregate).items()
                if name not in ("_id", "_version", "_pending_events", "grade")
            }
            class_version = getattr(type(aggregate), "class_version", 1)
            if class_version > 1:
                state["class_version"] = class_version
            # A JSON object's keys are text: the scopes go as [consent id, department, purpose].
            state["consent_scopes"] = [
                [consent_id, *scope] for consent_id, scope in aggregate.consent_scopes.items()
            ]
            return cls(
                originator_id=aggregate.id,
                originator_version=aggregate.version,
                timestamp=cls.create_timestamp(),
                topic=get_topic(type(aggregate)),
                state=state,
                resident_id=aggregate.resident_id,
                grade=aggregate.grade.value if aggregate.grade is not None else None,
            )

        def mutate(self, _: Any) -> Resident:
            """The resident as it stood; no grade if the sealed one cannot be read."""
            resident = super().mutate(None)
            if not isinstance(resident, Resident):
                raise TypeError(f"a resident's snapshot of a {type(resident).__name__}")
            resident.consent_scopes = {
                consent_id: (department, purpose)
                for consent_id, department, purpose in self.state["consent_scopes"]
            }
            resident.grade = Grade(self.grade) if isinstance(self.grade, str) else None
            return resident
