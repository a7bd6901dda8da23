"""Looking back: a resident's state at any time, and every recorded decision made again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from policy.decision import DecisionPoint
from vault.access import AccessAttempt
from vault.consent import Consent
from vault.document import Document
from vault.errors import ResidentNotFound
from vault.ids import check_resident_id, resident_aggregate_id
from vault.inputs import check_aware
from vault.judgement import judge_fetch
from vault.personal import Erased
from vault.policy_commands import PolicyCommands, UnknownPolicyVersion
from vault.resident import Resident

READJUDICATION_PAGE = 2000
_FOLDED = (Resident.Event, Document.Event, Consent.Event)


@dataclass(frozen=True)
class ResidentReplay:
    """A resident's documents, consents and grade exactly as they stood at ``at``."""

    resident: Resident
    at: datetime
    documents: list[Document]
    consents: list[Consent]


@dataclass(frozen=True)
class Mismatch:
    """A recorded decision that the policy and state of its time do not bear out."""

    event: int  # the access event's position in the log
    access_id: UUID
    at: datetime
    resident_id: str
    officer: str
    department: str
    document_id: UUID
    purpose: str
    policy_version: str
    recorded_allowed: bool
    decided_allowed: bool
    recorded_reasons: tuple[str, ...]  # reason codes
    decided_reasons: tuple[str, ...]


@dataclass
class Readjudication:
    """What re-making every decision in a window found."""

    checked: int = 0  # access events in the window, decided again
    unverifiable: int = 0  # of which the resident was erased: their grade is shredded
    events: int = 0  # events read from the log to rebuild the state
    mismatches: list[Mismatch] = field(default_factory=list)


class AuditCommands(PolicyCommands):
    def replay_resident(self, resident_id: str, at: datetime) -> ResidentReplay:
        """The resident's library, consents and grade at ``at``, rebuilt from the events."""
        check_resident_id(resident_id)
        resident = cast("Resident | None", self.as_of(resident_aggregate_id(resident_id), at))
        if resident is None:
            raise ResidentNotFound(f"resident {resident_id} was not registered at {at}")
        documents = [cast(Document, self.as_of(d, at)) for d in resident.document_ids]
        consents = [cast(Consent, self.as_of(c, at)) for c in resident.consent_ids]
        return ResidentReplay(resident, at, documents, consents)

    def readjudicate(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        page: int = READJUDICATION_PAGE,
        progress: Callable[[int, int], None] | None = None,
    ) -> Readjudication:
        """Decide again every access recorded in ``[since, until)`` and report each one
        whose outcome or reasons differ from what was recorded.

        The log is folded once, in order, so each access is judged on the residents,
        documents and consents exactly as they stood just before it in the log, with
        the decision point of the policy version it names. An access to a resident who
        has since been erased cannot be re-made (the grade it turned on is shredded);
        it is counted as unverifiable, not as a match.
        """
        for name, moment in (("since", since), ("until", until)):
            if moment is not None:
                check_aware(name, moment)
        head = self.recorder.max_notification_id() or 0
        found = Readjudication()
        states: dict[UUID, Any] = {}
        points: dict[str, DecisionPoint | None] = {}
        position = 1
        while position <= head:
            notifications = self.recorder.select_notifications(
                position, min(page, head - position + 1)
            )
            if not notifications:
                break
            events = self.mapper.to_domain_events(notifications)
            for notification, event in zip(notifications, events, strict=True):
                if isinstance(event, AccessAttempt.Recorded):
                    if (since is None or event.at >= since) and (until is None or event.at < until):
                        self._readjudge(notification.id, event, states, points, found)
                elif isinstance(event, _FOLDED):
                    aggregate_id = event.originator_id
                    states[aggregate_id] = event.mutate(states.get(aggregate_id))
            found.events += len(notifications)
            position = notifications[-1].id + 1
            if progress:
                progress(position - 1, head)
        return found

    def _readjudge(
        self,
        position: int,
        access: AccessAttempt.Recorded,
        states: dict[UUID, Any],
        points: dict[str, DecisionPoint | None],
        found: Readjudication,
    ) -> None:
        found.checked += 1
        if isinstance(access.grade, Erased):
            found.unverifiable += 1
            return
        if access.policy_version not in points:
            try:
                points[access.policy_version] = self.decision_point(access.policy_version)
            except UnknownPolicyVersion:
                points[access.policy_version] = None
        point = points[access.policy_version]
        decided: tuple[str, ...]
        if point is None:
            decided_allowed, decided = False, ("unknown-policy-version",)
        else:
            resident = cast(
                "Resident | None", states.get(resident_aggregate_id(access.resident_id))
            )
            document = cast("Document | None", states.get(access.document_id))
            if document is not None and document.resident_id != access.resident_id:
                document = None
            consents = (
                [states[c] for c in resident.consents_for(access.department, access.purpose)]
                if resident is not None and not resident.is_erased
                else []
            )
            judgement = judge_fetch(
                resident=resident,
                document=document,
                consents=consents,
                officer=access.officer,
                department=access.department,
                purpose=access.purpose,
                point=point,
                now=access.at,
            )
            decided_allowed = judgement.allowed
            decided = tuple(r.code for r in judgement.reasons)
        recorded = tuple(access.reason_codes)
        if decided_allowed != access.allowed or decided != recorded:
            found.mismatches.append(
                Mismatch(
                    event=position,
                    access_id=access.originator_id,
                    at=access.at,
                    resident_id=access.resident_id,
                    officer=access.officer,
                    department=access.department,
                    document_id=access.document_id,
                    purpose=access.purpose,
                    policy_version=access.policy_version,
                    recorded_allowed=access.allowed,
                    decided_allowed=decided_allowed,
                    recorded_reasons=recorded,
                    decided_reasons=decided,
                )
            )
