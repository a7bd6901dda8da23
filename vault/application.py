"""An application (办件): accepted once, at a window or online, reviewed behind the counter
step by step (后台协同), and decided; the resident may supply what is asked for, bring or
commit to (告知承诺) what it was accepted without (容缺), withdraw while it is open, and rate
it once it is decided.

The time limit is kept as its parts — when it was accepted, how many working days, and
when the clock stood still (补正: from the day a department asked for more until the
resident supplied it) — so that due dates and the clock's state are computed on the
working-day calendar (:mod:`vault.workdays`), never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from vault.aggregate import VaultAggregate
from vault.errors import (
    AlreadyRated,
    ApplicationClosed,
    CodeRefused,
    InvalidInput,
    NotAReviewer,
    StepMoved,
)
from vault.workdays import WorkingCalendar, due_with_pauses, working_days_used

_CODES = UUID("0c6f1d2e-3b4a-5c6d-8e7f-9a0b1c2d3e4f")
Channel = Literal["online", "window"]
Decision = Literal["approve", "return", "reject"]
DECISIONS: tuple[Decision, ...] = ("approve", "return", "reject")
MaterialSource = Literal["library", "window", "supplement", "commitment", "missing"]


class ApplicationStatus(StrEnum):
    ACCEPTED = "accepted"
    """Waiting for its first reviewer."""
    IN_REVIEW = "in-review"
    RETURNED = "returned"
    """Waiting for the resident to supply what a reviewer asked for (the clock stands still)."""
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"

    @property
    def is_open(self) -> bool:
        return self in _OPEN


_OPEN = {ApplicationStatus.ACCEPTED, ApplicationStatus.IN_REVIEW, ApplicationStatus.RETURNED}


@dataclass
class StepState:
    """One back-office step: its departments review side by side; it is done when each has
    approved."""

    departments: tuple[str, ...]
    approved_by: dict[str, tuple[str, datetime]]
    """Department → (officer, when)."""
    status: Literal["waiting", "approved", "returned", "rejected"] = "waiting"
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None


class Application(VaultAggregate):
    """One application for one service by one resident."""

    class Accepted(Aggregate.Created):
        personal_fields: ClassVar[tuple[str, ...]] = ("form",)
        resident_id: str
        service_id: str
        department: str
        channel: str
        unit: str | None
        clerk: str | None
        tracks: list[str]
        consent_ids: list[str]
        materials: list[dict[str, Any]]
        form: dict[str, dict[str, str]]
        steps: list[list[str]]
        time_limit_days: int
        accepted_at: datetime
        due_at: datetime
        catalogue_version: str
        policy_version: str

    @event(Accepted)
    def __init__(
        self,
        *,
        resident_id: str,
        service_id: str,
        department: str,
        channel: str,
        unit: str | None,
        clerk: str | None,
        tracks: list[str],
        consent_ids: list[str],
        materials: list[dict[str, Any]],
        form: dict[str, dict[str, str]],
        steps: list[list[str]],
        time_limit_days: int,
        accepted_at: datetime,
        due_at: datetime,
        catalogue_version: str,
        policy_version: str,
        timestamp: datetime,
    ) -> None:
        self.resident_id = resident_id
        self.service_id = service_id
        self.department = department
        """The department that owns the service (and issues its document)."""
        self.channel = channel
        self.unit = unit
        self.clerk = clerk
        self.tracks = tuple(tracks)
        self.consent_ids = tuple(consent_ids)
        """One consent per reviewing department, made for this application."""
        self.materials = [dict(m) for m in materials]
        self.form = {name: dict(value) for name, value in form.items()}
        self.steps = [StepState(tuple(d), {}) for d in steps]
        self.current_step = 0
        self.time_limit_days = time_limit_days
        self.accepted_at = accepted_at
        self.due_at: datetime | None = due_at
        """The due moment on the working-day calendar, as it stood after the last event;
        None while the clock stands still and once the application is closed."""
        self.catalogue_version = catalogue_version
        self.policy_version = policy_version
        self.status = ApplicationStatus.ACCEPTED
        self.asked_for: tuple[str, ...] = ()
        self.pauses: list[tuple[datetime, datetime | None]] = []
        self.decided_at: datetime | None = None
        self.result_document_id: str | None = None
        self.withdrawn_at: datetime | None = None
        self.rating: tuple[int, str | None, datetime] | None = None

    @property
    def number(self) -> str:
        """The number people quote (受理编号): the day of acceptance and the id's first six
        hex digits, e.g. ``20261206-3F9A1C``."""
        return f"{self.accepted_at:%Y%m%d}-{self.id.hex[:6].upper()}"

    def reviews(self, department: str) -> bool:
        """Whether a department reviews this application at some step."""
        return any(department in step.departments for step in self.steps)

    @property
    def departments(self) -> tuple[str, ...]:
        """The departments that review it, each once, in the order of its steps."""
        return tuple(dict.fromkeys(d for step in self.steps for d in step.departments))

    def consent_of(self, department: str) -> UUID:
        """The consent made for this application that lets ``department`` read its
        materials (one per reviewing department, in :attr:`departments` order)."""
        return UUID(self.consent_ids[self.departments.index(department)])

    def at_current_step(self, department: str) -> bool:
        return (
            self.status in (ApplicationStatus.ACCEPTED, ApplicationStatus.IN_REVIEW)
            and department in self.waiting_on
        )

    @property
    def waiting_on(self) -> tuple[str, ...]:
        """The departments of the current step that have yet to approve it (while it is
        returned, those that will review it again once the resident has supplied)."""
        if not self.status.is_open:
            return ()
        step = self.steps[self.current_step]
        return tuple(d for d in step.departments if d not in step.approved_by)

    def is_last_approval(self, department: str) -> bool:
        """Whether ``department`` approving now would decide the whole application."""
        return self.current_step == len(self.steps) - 1 and self.waiting_on == (department,)

    # commands

    def decide(
        self,
        *,
        department: str,
        officer: str,
        decision: Decision,
        reason: str,
        asked_for: list[str],
        result_document_id: str | None,
        at: datetime,
        calendar: WorkingCalendar,
    ) -> None:
        """A reviewer of the current step approves it, returns the application for the
        resident to supply ``asked_for`` (补正: the clock stops), or rejects it. The event
        says what follows on the ``calendar``: whom it waits on next and when it is due,
        or, when it closes, how many working days it took and whether that was on time."""
        if not self.status.is_open:
            raise ApplicationClosed(f"application {self.number} is {self.status.value}")
        if not self.reviews(department):
            raise NotAReviewer(f"{department} reviews no step of application {self.number}")
        if not self.at_current_step(department):
            raise StepMoved(
                f"application {self.number} is not waiting for {department} "
                f"(it is {self.status.value}, at step {self.current_step + 1})"
            )
        if decision == "return" and not asked_for:
            raise InvalidInput("materials", "say which materials the resident should supply")
        closes = decision == "reject" or (
            decision == "approve" and self.is_last_approval(department)
        )
        if (result_document_id is not None) != (decision == "approve" and closes):
            raise ValueError("a result document comes with the last approval, and only then")
        waiting_on: list[str] = [d for d in self.waiting_on if d != department]
        if decision == "approve" and not waiting_on and not closes:
            waiting_on = list(self.steps[self.current_step + 1].departments)
        elif decision == "return":
            waiting_on = list(self.waiting_on)
        working_days = on_time = None
        due = self.due_at if decision == "approve" and not closes else None
        if closes:
            working_days = working_days_used(self.accepted_at, at, calendar, self.pauses)
            due_then = due_with_pauses(self.accepted_at, self.time_limit_days, calendar,
                                       self.pauses)
            on_time = at <= due_then
            waiting_on = []
        self._decided(
            self.resident_id, department, officer, decision, reason, list(asked_for),
            result_document_id, at, waiting_on, due, working_days, on_time, timestamp=at,
        )

    class Decided(Aggregate.Event):
        personal_fields: ClassVar[tuple[str, ...]] = ("reason",)
        resident_id: str
        department: str
        officer: str
        decision: str
        reason: str
        asked_for: list[str]
        result_document_id: str | None
        at: datetime
        waiting_on: list[str]
        """The departments the application waits on after this decision."""
        due_at: datetime | None
        """Its due moment after it (None while returned, and once closed)."""
        working_days: int | None
        """When it closes: the working days it took, the clock's pauses left out."""
        on_time: bool | None
        """When it closes: whether it was decided by its due moment."""

    @event(Decided)
    def _decided(
        self, resident_id: str, department: str, officer: str, decision: str, reason: str,
        asked_for: list[str], result_document_id: str | None, at: datetime,
        waiting_on: list[str], due_at: datetime | None, working_days: int | None,
        on_time: bool | None, timestamp: datetime,
    ) -> None:
        step = self.steps[self.current_step]
        step.decided_by, step.decided_at, step.reason = officer, at, reason
        self.due_at = due_at
        if decision == "approve":
            step.approved_by[department] = (officer, at)
            if set(step.approved_by) == set(step.departments):
                step.status = "approved"
                if self.current_step == len(self.steps) - 1:
                    self.status = ApplicationStatus.APPROVED
                    self.decided_at = at
                    self.result_document_id = result_document_id
                    return
                self.current_step += 1
            self.status = ApplicationStatus.IN_REVIEW
        elif decision == "return":
            step.status = "returned"
            self.status = ApplicationStatus.RETURNED
            self.asked_for = tuple(asked_for)
            self.pauses.append((at, None))
        else:
            step.status = "rejected"
            self.status = ApplicationStatus.REJECTED
            self.decided_at = at

    def supply(
        self, *, doc_type: str, document_id: str, trust_level: str, source: MaterialSource,
        at: datetime, calendar: WorkingCalendar,
    ) -> None:
        """The resident supplies a material: one asked for (补正) — when the last arrives
        the clock runs again (the event says until when, on the ``calendar``) and the step
        that asked reviews anew — or, while the application is open, one it was accepted
        without (容缺), which changes nothing else."""
        if self.status is ApplicationStatus.RETURNED and doc_type in self.asked_for:
            due = None
            if self.asked_for == (doc_type,):  # the last: the pause ends now
                started, _ = self.pauses[-1]
                due = due_with_pauses(self.accepted_at, self.time_limit_days, calendar,
                                      [*self.pauses[:-1], (started, at)])
            self._supplied(self.resident_id, doc_type, document_id, trust_level, source, at,
                           list(self.waiting_on), due, timestamp=at)
            return
        if self.status.is_open and doc_type in self.still_missing:
            self._missing_supplied(self.resident_id, doc_type, document_id, trust_level,
                                   source, at, timestamp=at)
            return
        if self.status is not ApplicationStatus.RETURNED:
            raise ApplicationClosed(
                f"application {self.number} is {self.status.value}: nothing is asked for"
                + (f" or missing ({', '.join(self.still_missing)})"
                   if self.still_missing and self.status.is_open else "")
            )
        raise InvalidInput(
            "doc_type", f"{doc_type} was not asked for (asked: {', '.join(self.asked_for)})"
        )

    @property
    def still_missing(self) -> tuple[str, ...]:
        """The materials it was accepted without (容缺) that have not come yet."""
        return tuple(m["doc_type"] for m in self.materials if m["source"] == "missing")

    def commit(self, *, doc_type: str, statement: str, at: datetime) -> None:
        """While the application is open, the resident signs a commitment (告知承诺书) in
        place of a material it was accepted without (容缺): the commitment takes the
        material's place (trust level D, its words kept) and nothing else changes. Whether
        the service and the tracks allow it is the service's to judge
        (:func:`vault.acceptance.may_be_committed`)."""
        if not self.status.is_open:
            raise ApplicationClosed(f"application {self.number} is {self.status.value}")
        if doc_type not in self.still_missing:
            if not self.still_missing:
                raise ApplicationClosed(
                    f"application {self.number} is {self.status.value}: nothing is missing"
                )
            raise InvalidInput(
                "doc_type",
                f"{doc_type} is not missing (missing: {', '.join(self.still_missing)})",
            )
        self._missing_committed(self.resident_id, doc_type, statement, at, timestamp=at)

    class MissingCommitted(Aggregate.Event):
        resident_id: str
        doc_type: str
        statement: str
        at: datetime

    @event(MissingCommitted)
    def _missing_committed(
        self, resident_id: str, doc_type: str, statement: str, at: datetime,
        timestamp: datetime,
    ) -> None:
        entry = {"doc_type": doc_type, "source": "commitment", "document_id": None,
                 "trust_level": "D", "due_at": None, "statement": statement}
        self.materials = [m for m in self.materials if m["doc_type"] != doc_type] + [entry]

    @event("MissingSupplied")
    def _missing_supplied(
        self, resident_id: str, doc_type: str, document_id: str, trust_level: str, source: str,
        at: datetime, timestamp: datetime,
    ) -> None:
        entry = {"doc_type": doc_type, "source": source, "document_id": document_id,
                 "trust_level": trust_level, "due_at": None}
        self.materials = [m for m in self.materials if m["doc_type"] != doc_type] + [entry]

    @event("Supplied")
    def _supplied(
        self, resident_id: str, doc_type: str, document_id: str, trust_level: str, source: str,
        at: datetime, waiting_on: list[str], due_at: datetime | None, timestamp: datetime,
    ) -> None:
        entry = {"doc_type": doc_type, "source": source, "document_id": document_id,
                 "trust_level": trust_level, "due_at": None}
        self.materials = [m for m in self.materials if m["doc_type"] != doc_type] + [entry]
        self.asked_for = tuple(d for d in self.asked_for if d != doc_type)
        self.due_at = due_at
        if not self.asked_for:
            started, _ = self.pauses[-1]
            self.pauses[-1] = (started, at)
            self.steps[self.current_step].status = "waiting"  # who returned it reviews anew
            self.status = ApplicationStatus.IN_REVIEW

    def withdraw(self, at: datetime) -> None:
        """The resident withdraws an application that is still open."""
        if not self.status.is_open:
            raise ApplicationClosed(f"application {self.number} is {self.status.value}")
        self._withdrawn(self.resident_id, at, timestamp=at)

    @event("Withdrawn")
    def _withdrawn(self, resident_id: str, at: datetime, timestamp: datetime) -> None:
        if self.pauses and self.pauses[-1][1] is None:
            self.pauses[-1] = (self.pauses[-1][0], at)
        self.asked_for = ()
        self.due_at = None
        self.status = ApplicationStatus.WITHDRAWN
        self.withdrawn_at = at

    def rate(self, score: int, comment: str | None, at: datetime) -> None:
        """The resident rates the service once it is decided (好差评), once."""
        if self.status not in (ApplicationStatus.APPROVED, ApplicationStatus.REJECTED):
            raise ApplicationClosed(f"application {self.number} is not decided yet")
        if self.rating is not None:
            raise AlreadyRated(f"application {self.number} is rated already")
        if not 1 <= score <= 5:
            raise ValueError("a rating is 1 to 5")
        self._rated(self.resident_id, score, comment, at, timestamp=at)

    class Rated(Aggregate.Event):
        personal_fields: ClassVar[tuple[str, ...]] = ("comment",)
        resident_id: str
        score: int
        comment: str | None
        at: datetime

    @event(Rated)
    def _rated(
        self, resident_id: str, score: int, comment: str | None, at: datetime,
        timestamp: datetime,
    ) -> None:
        self.rating = (score, comment, at)


class AuthorizationCode(VaultAggregate):
    """A short code a resident makes in their own session so that a window clerk may accept
    one application for them (one use, a few minutes). Only its hash is kept."""

    @staticmethod
    def create_id(resident_id: str, code_hash: str) -> UUID:
        return uuid5(_CODES, f"{resident_id}:{code_hash}")

    @event("Made")
    def __init__(
        self, resident_id: str, code_hash: str, service_id: str, expires_at: datetime,
        timestamp: datetime,
    ) -> None:
        self.resident_id = resident_id
        self.service_id = service_id
        self.expires_at = expires_at
        self.used_at: datetime | None = None

    def usable(self, service_id: str, at: datetime) -> bool:
        """Whether the code may be spent now on an application for ``service_id``: unused,
        unexpired, and made for that service."""
        return self.used_at is None and at < self.expires_at and service_id == self.service_id

    def redeem(self, service_id: str, clerk: str, unit: str, at: datetime) -> None:
        """Spend the code on accepting one application for ``service_id``."""
        if not self.usable(service_id, at):
            raise CodeRefused("the authorization code is not valid for this service now")
        self._redeemed(clerk, unit, at, timestamp=at)

    @event("Redeemed")
    def _redeemed(self, clerk: str, unit: str, at: datetime, timestamp: datetime) -> None:
        self.used_at = at
