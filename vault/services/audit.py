"""Auditors looking back: a resident's state at any time, every recorded decision made again."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from keys.errors import ResidentKeyShredded, UnknownResidentKey
from policy.catalogue_entries import Catalogue
from policy.decision import Decision, DecisionPoint, TrackDecision
from policy.scales import Grade, TrustLevel
from vault.acceptance import acceptance_problems
from vault.access import ACCESS_TOPIC, AccessAttempt
from vault.application import Application
from vault.attestation import ATTESTATION_TOPIC, VERIFY, AttestationAttempt, judge_attestation
from vault.consent import USED_TOPIC, Consent
from vault.document import REUSED_TOPIC, Document
from vault.errors import ResidentNotFound, UnknownPolicyVersion
from vault.folding import collector_held_back
from vault.ids import check_resident_id, resident_aggregate_id
from vault.inputs import check_aware
from vault.judgement import judge_fetch
from vault.ports import DataKeys, EventLog
from vault.resident import Resident
from vault.services.catalogues import Catalogues
from vault.services.policies import Policies
from vault.store import Store

READJUDICATION_PAGE = 2000
_ACCEPTED_TOPIC = get_topic(Application.Accepted)
_SEALED_READ = frozenset({ACCESS_TOPIC, ATTESTATION_TOPIC, _ACCEPTED_TOPIC})
"""Decoded without opening their sealed fields: the decisions do not turn on them."""
_FOLDED = (Resident.Event, Document.Event, Consent.Event)
# Events that only count: folded by their version alone.
_TALLIED: dict[str, Callable[[Any, int], None]] = {
    REUSED_TOPIC: Document.apply_reuse,
    USED_TOPIC: Consent.apply_use,
}


class _Remembering:
    """A decision point that remembers its answers: re-adjudication asks the same few
    questions hundreds of thousands of times, and a decision is a pure function of them."""

    def __init__(self, point: DecisionPoint) -> None:
        self._point = point
        self.version = point.version
        self._answers: dict[tuple[Any, ...], Decision] = {}
        self._tracks: dict[tuple[Any, ...], TrackDecision] = {}

    def decide(
        self,
        *,
        officer: str,
        department: str,
        doc_type: str,
        purpose: str,
        grade: Grade | None,
        trust: TrustLevel,
    ) -> Decision:
        question = (officer, department, doc_type, purpose, grade, trust)
        answer = self._answers.get(question)
        if answer is None:
            answer = self._answers[question] = self._point.decide(
                officer=officer, department=department, doc_type=doc_type, purpose=purpose,
                grade=grade, trust=trust,
            )
        return answer

    def tracks(self, service: str, grade: Grade | None) -> TrackDecision:
        question = ("tracks", service, grade)
        answer = self._tracks.get(question)
        if answer is None:
            answer = self._tracks[question] = self._point.tracks(service, grade)
        return answer

    def attest(self, *, officer: str, department: str, doc_type: str, act: str) -> Decision:
        question = ("attest", officer, department, doc_type, act)
        answer = self._answers.get(question)
        if answer is None:
            answer = self._answers[question] = self._point.attest(
                officer=officer, department=department, doc_type=doc_type, act=act
            )
        return answer


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


@dataclass(frozen=True)
class AcceptanceMismatch:
    """A recorded acceptance of an application that the policy, the catalogue and the
    library of its time do not bear out."""

    event: int
    application_id: UUID
    at: datetime
    resident_id: str
    service_id: str
    policy_version: str
    catalogue_version: str
    problems: tuple[str, ...]
    """``tracks`` (not those earned then), ``materials`` (not the service's), or
    ``SOURCE:DOC_TYPE`` for a material that could not be taken so (``library:id-card``)."""


@dataclass
class Readjudication:
    """What re-making every decision in a window found."""

    checked: int = 0  # access events in the window, decided again
    unverifiable: int = 0  # of which the resident was erased: their grade is shredded
    events: int = 0  # events read from the log to rebuild the state
    mismatches: list[Mismatch] = field(default_factory=list)
    acceptances: int = 0  # applications accepted in the window, judged again
    acceptances_unverifiable: int = 0  # of which the resident was erased
    acceptance_mismatches: list[AcceptanceMismatch] = field(default_factory=list)


class Audit:
    def __init__(
        self, store: Store, policies: Policies, catalogues: Catalogues, log: EventLog,
        keys: DataKeys,
    ) -> None:
        self._store = store
        self._policies = policies
        self._catalogues = catalogues
        self._log = log
        self._keys = keys

    def replay_resident(self, resident_id: str, at: datetime) -> ResidentReplay:
        """The resident's library, consents and grade at ``at``, rebuilt from the events."""
        check_resident_id(resident_id)
        as_of = self._store.as_of
        resident = cast("Resident | None", as_of(resident_aggregate_id(resident_id), at))
        if resident is None:
            raise ResidentNotFound(f"resident {resident_id} was not registered at {at}")
        documents = [cast(Document, as_of(d, at)) for d in resident.document_ids]
        consents = [cast(Consent, as_of(c, at)) for c in resident.consent_ids]
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
        head = self._log.head()
        fold = _ReadjudicationFold(
            self._log, self._keys, self._policies, self._catalogues, since, until
        )
        with collector_held_back():
            position = 1
            while position <= head:
                notifications = self._log.select_notifications(
                    position, min(page, head - position + 1)
                )
                if not notifications:
                    break
                fold.page(notifications)
                position = notifications[-1].id + 1
                if progress:
                    progress(position - 1, head)
        return fold.found


class _ReadjudicationFold:
    """The log folded page by page in order, each access judged on the state before it."""

    def __init__(
        self,
        log: EventLog,
        keys: DataKeys,
        policies: Policies,
        catalogues: Catalogues,
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self.log = log
        self.keys = keys
        self.policies = policies
        self.catalogues = catalogues
        self.catalogue_versions: dict[str, Catalogue | None] = {}
        self.since = since
        self.until = until
        self.found = Readjudication()
        self.states: dict[UUID, Any] = {}
        self.points: dict[str, _Remembering | None] = {}
        self.shredded: dict[str, bool] = {}

    def page(self, notifications: Sequence[Notification]) -> None:
        # Accesses are read without opening their sealed fields (the decision does not
        # turn on them), and events that only count are not decoded at all.
        log = self.log
        decoded = [n for n in notifications if n.topic not in _TALLIED]
        accesses = [n for n in decoded if n.topic in _SEALED_READ]
        folded = [n for n in decoded if n.topic not in _SEALED_READ]
        events = dict(zip((n.id for n in folded), log.decode(folded), strict=True))
        opened = log.decode(accesses, open_personal=False)
        events.update(zip((n.id for n in accesses), opened, strict=True))
        self._note_shredded(
            {e.resident_id for e in opened
             if isinstance(e, AccessAttempt.Recorded | Application.Accepted)}
        )
        states = self.states
        for notification in notifications:
            event = events.get(notification.id)
            if event is None:  # a reuse or a use: counted
                aggregate = states.get(cast(UUID, notification.originator_id))
                if aggregate is not None:
                    _TALLIED[notification.topic](aggregate, notification.originator_version)
            elif isinstance(event, AccessAttempt.Recorded):
                if self._in_window(event.at):
                    self._readjudge(notification.id, event)
            elif isinstance(event, AttestationAttempt.Recorded):
                if self._in_window(event.at):
                    self._readjudge_attestation(notification.id, event)
            elif isinstance(event, Application.Accepted):
                if self._in_window(event.accepted_at):
                    self._readjudge_acceptance(notification.id, event)
            elif isinstance(event, _FOLDED):
                aggregate_id = event.originator_id
                states[aggregate_id] = event.mutate(states.get(aggregate_id))
        self.found.events += len(notifications)

    def _in_window(self, at: datetime) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def _note_shredded(self, residents: set[str]) -> None:
        """Learn which of these residents' keys were destroyed (a resident never registered
        has none to destroy: nothing of theirs was sealed)."""
        unseen = residents - self.shredded.keys()
        keys = self.keys
        keys.prefetch(unseen)  # one query for the page's new residents' keys
        for resident_id in unseen:
            try:
                keys.data_key(resident_id)
            except ResidentKeyShredded:
                self.shredded[resident_id] = True
                continue
            except UnknownResidentKey:
                pass
            self.shredded[resident_id] = False

    def _point(self, policy_version: str) -> _Remembering | None:
        if policy_version not in self.points:
            try:
                point = _Remembering(self.policies.decision_point(policy_version))
            except UnknownPolicyVersion:
                self.points[policy_version] = None
            else:
                self.points[policy_version] = point
        return self.points[policy_version]

    def _readjudge_attestation(self, position: int, attempt: AttestationAttempt.Recorded) -> None:
        """An issue or a verification decided again: the policy of its version, the
        resident and (for a verification) the document as they stood before it. None of
        that is personal, so an erased resident's attempts are still checked."""
        found = self.found
        found.checked += 1
        point = self._point(attempt.policy_version)
        decided: tuple[str, ...]
        if point is None:
            decided_allowed, decided = False, ("unknown-policy-version",)
        else:
            states = self.states
            resident = cast(
                "Resident | None", states.get(resident_aggregate_id(attempt.resident_id))
            )
            document = cast("Document | None", states.get(attempt.document_id))
            judged = judge_attestation(
                act=attempt.act, resident=resident,
                document=document if attempt.act == VERIFY else None,
                doc_type=attempt.doc_type, officer=attempt.officer,
                department=attempt.department, point=point,
            )
            decided_allowed, decided = judged.allowed, tuple(r.code for r in judged.reasons)
        self._compare(position, attempt, attempt.act, decided_allowed, decided)

    def _readjudge(self, position: int, access: AccessAttempt.Recorded) -> None:
        found = self.found
        found.checked += 1
        if self.shredded[access.resident_id]:  # the grade the decision turned on is shredded
            found.unverifiable += 1
            return
        point = self._point(access.policy_version)
        decided: tuple[str, ...]
        if point is None:
            decided_allowed, decided = False, ("unknown-policy-version",)
        else:
            states = self.states
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
        self._compare(position, access, access.purpose, decided_allowed, decided)

    def _readjudge_acceptance(self, position: int, accepted: Application.Accepted) -> None:
        """An application's acceptance judged again: the tracks the resident earned then
        under the policy of its version, and each material under the catalogue of its
        version and the library as it stood just before."""
        found = self.found
        found.acceptances += 1
        if self.shredded[accepted.resident_id]:  # the grade the tracks turned on is shredded
            found.acceptances_unverifiable += 1
            return
        point = self._point(accepted.policy_version)
        catalogue = self._catalogue(accepted.catalogue_version)
        states = self.states
        resident = cast("Resident | None", states.get(resident_aggregate_id(accepted.resident_id)))
        problems: tuple[str, ...]
        if point is None:
            problems = ("unknown-policy-version",)
        elif catalogue is None or not catalogue.knows("service", accepted.service_id):
            problems = ("unknown-catalogue-version",)
        elif resident is None:
            problems = ("resident-not-found",)
        else:
            earned = point.tracks(accepted.service_id, resident.grade).tracks
            problems = acceptance_problems(
                materials=catalogue.service(accepted.service_id).materials,
                recorded=accepted.materials, recorded_tracks=tuple(accepted.tracks),
                earned_tracks=tuple(earned), resident_id=accepted.resident_id,
                document=lambda i: states.get(UUID(i)), at=accepted.accepted_at,
            )
        if problems:
            found.acceptance_mismatches.append(AcceptanceMismatch(
                event=position, application_id=accepted.originator_id,
                at=accepted.accepted_at, resident_id=accepted.resident_id,
                service_id=accepted.service_id, policy_version=accepted.policy_version,
                catalogue_version=accepted.catalogue_version, problems=problems,
            ))

    def _catalogue(self, version: str) -> Catalogue | None:
        if version not in self.catalogue_versions:
            self.catalogue_versions[version] = self.catalogues.version(version)
        return self.catalogue_versions[version]

    def _compare(
        self,
        position: int,
        recorded: AccessAttempt.Recorded | AttestationAttempt.Recorded,
        purpose: str,
        decided_allowed: bool,
        decided: tuple[str, ...],
    ) -> None:
        """Note a mismatch between what was recorded and what was decided again."""
        codes = tuple(recorded.reason_codes)
        if decided_allowed == recorded.allowed and decided == codes:
            return
        self.found.mismatches.append(
            Mismatch(
                event=position,
                access_id=recorded.originator_id,
                at=recorded.at,
                resident_id=recorded.resident_id,
                officer=recorded.officer,
                department=recorded.department,
                document_id=recorded.document_id,
                purpose=purpose,
                policy_version=recorded.policy_version,
                recorded_allowed=recorded.allowed,
                decided_allowed=decided_allowed,
                recorded_reasons=codes,
                decided_reasons=decided,
            )
        )
