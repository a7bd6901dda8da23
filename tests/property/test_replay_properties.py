"""Invariant 1: state is a fold of its events; a replay from zero gives the same state.

Random programs of vault commands run on a real store (SQLite and PostgreSQL).
Afterwards the store is reopened by a new process-like vault, and every
aggregate is rebuilt three ways — the original vault's repository, the new
vault's repository, and a fold of the whole notification log from zero — and
all three must agree. Refused commands must write nothing, and no consent may
ever be used more often than it allows. And replaying a resident at any past time
shows exactly the state that was live then.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.settings import Settings
from adapters.wiring import Core, open_services
from policy.scales import Grade
from tests.support import MovableClock
from vault.consent import Consent
from vault.errors import ConsentNotFound, ResidentNotFound, VaultError
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate

RESIDENTS = ["r1", "r2", "r3"]
DOC_TYPES = ["id-card", "diploma"]
DEPARTMENTS = ["civil-affairs", "housing"]
# Who issues (the first two may, by the shipped policy; housing may not) and who verifies
# (housing may verify ID cards, human-resources both types, tax neither).
ISSUES = [("public-security", "id-card"), ("education", "diploma"), ("housing", "id-card")]
VERIFIERS = ["housing", "human-resources", "tax"]
ISSUERS = ["public-security", "education", "housing"]

command = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(RESIDENTS), st.sampled_from(DOC_TYPES)),
    st.tuples(st.just("issue"), st.sampled_from(ISSUES), st.sampled_from(RESIDENTS)),
    st.tuples(st.just("replace"), st.integers(0, 20)),
    st.tuples(st.just("verify"), st.integers(0, 20), st.sampled_from(VERIFIERS)),
    st.tuples(st.just("withdraw"), st.integers(0, 20)),
    st.tuples(st.just("revoke-document"), st.integers(0, 20), st.sampled_from(ISSUERS)),
    st.tuples(st.just("grant"), st.sampled_from(RESIDENTS), st.integers(1, 3)),
    st.tuples(st.just("fetch"), st.integers(0, 20), st.sampled_from(DEPARTMENTS)),
    st.tuples(st.just("revoke-consent"), st.integers(0, 20)),
    st.tuples(st.just("grade"), st.sampled_from(RESIDENTS), st.sampled_from(list(Grade)),
              st.integers(0, 9)),
    st.tuples(st.just("advance"), st.integers(1, 40)),
    st.tuples(st.just("erase"), st.just("r3")),  # r1 and r2 live on, so later steps matter
)


class Program:
    """Runs commands, remembering created ids; refused commands change nothing."""

    def __init__(self, vault: Core, clock: MovableClock) -> None:
        self.vault = vault
        self.clock = clock
        self.documents: list[UUID] = []
        self.consents: list[UUID] = []
        self.refused: list[str] = []

    def run(self, step: tuple[Any, ...]) -> None:
        name, *args = step
        before = self.vault.events.head()
        try:
            getattr(self, name.replace("-", "_"))(*args)
        except VaultError as e:
            self.refused.append(e.code)
        else:
            return
        after = self.vault.events.head()
        # A denied fetch records its one access event, a refused issue or verification of
        # a document there is its one attestation event; any other refusal writes nothing.
        code = self.refused[-1]
        recorded = code == "access-denied" or (
            name in ("issue", "verify") and code not in ("document-not-found", "nothing-to-pick")
        )
        expected = before + 1 if recorded else before
        assert after == expected, f"refused {name} ({self.refused[-1]}) wrote {after - before}"

    def _pick(self, items: list[UUID], index: int) -> UUID:
        if not items:
            raise _Nothing()
        return items[index % len(items)]

    def submit(self, resident: str, doc_type: str) -> None:
        document = self.vault.documents.submit(
            resident, io.BytesIO(f"{resident}/{doc_type}".encode()),
            DocumentDetails(doc_type=doc_type, title=f"{doc_type} of {resident}"),
        ).value
        self.documents.append(document.id)

    def issue(self, issuer: tuple[str, str], resident: str) -> None:
        department, doc_type = issuer
        document = self.vault.documents.issue(
            department, "officer", resident, [b"issued"],
            DocumentDetails(doc_type=doc_type, title=f"issued {doc_type}"),
        ).value
        self.documents.append(document.id)

    def replace(self, index: int) -> None:
        old = self.vault.documents.find(self._pick(self.documents, index))
        document = self.vault.documents.submit(
            old.resident_id, [b"newer"],
            DocumentDetails(doc_type=old.doc_type, title="newer version"), replaces=old.id,
        ).value
        self.documents.append(document.id)

    def verify(self, index: int, department: str) -> None:
        self.vault.documents.verify(department, "officer", self._pick(self.documents, index))

    def withdraw(self, index: int) -> None:
        document = self.vault.documents.find(self._pick(self.documents, index))
        self.vault.documents.withdraw(document.resident_id, document.id)

    def revoke_document(self, index: int, department: str) -> None:
        self.vault.documents.revoke(department, self._pick(self.documents, index), "cancelled")

    def grant(self, resident: str, max_uses: int) -> None:
        granted = self.vault.consents.grant(
            resident,
            ConsentRequest(
                department="civil-affairs", doc_types=("id-card",),
                purpose="subsistence-allowance",
                valid_until=self.clock.now() + timedelta(days=30), max_uses=max_uses,
            ),
        )
        self.consents.append(granted.consent.id)

    def fetch(self, index: int, department: str) -> None:
        document = self.vault.documents.find(self._pick(self.documents, index))
        self.vault.fetches.fetch(
            officer="officer", department=department, resident_id=document.resident_id,
            document_id=document.id, purpose="subsistence-allowance",
        )

    def revoke_consent(self, index: int) -> None:
        consent = self.vault.store.get(
            Consent, self._pick(self.consents, index), ConsentNotFound
        )
        self.vault.consents.revoke(consent.resident_id, consent.id)

    def grade(self, resident: str, grade: Grade, sequence: int) -> None:
        update = GradeUpdate(resident, grade, self.clock.now(), sequence)
        self.vault.residents.record_grades([update])

    def advance(self, days: int) -> None:
        self.clock.advance(timedelta(days=days))

    def erase(self, resident: str) -> None:
        self.vault.residents.erase(resident)


class _Nothing(VaultError):
    code = "nothing-to-pick"


def fold_log(vault: Core) -> dict[UUID, Aggregate]:
    """Every aggregate, rebuilt by folding the notification log from the first event."""
    state: dict[UUID, Any] = {}
    start = 1
    while page := vault.events.select_notifications(start, 200):
        for notification in page:
            event: Any = vault.application.mapper.to_domain_event(notification)
            state[event.originator_id] = event.mutate(state.get(event.originator_id))
        start = page[-1].id + 1
    return state


@settings(max_examples=12)
@given(program=st.lists(command, min_size=1, max_size=30))
def test_replay_from_zero_gives_the_same_state(
    fresh_settings: Callable[[], Settings], program: list[tuple[Any, ...]]
) -> None:
    settings_ = fresh_settings()
    clock = MovableClock()
    first = open_services(settings_, clock=clock)
    try:
        first.policies.current_version()  # the default policy is published on first need
        runner = Program(first, clock)
        for step in program:
            runner.run(step)
        live = {i: first.application.repository.get(i) for i in fold_log(first)}
    finally:
        first.close()

    reopened = open_services(settings_, clock=clock)
    try:
        folded = fold_log(reopened)
        assert folded.keys() == live.keys()
        for aggregate_id, aggregate in folded.items():
            assert aggregate == live[aggregate_id]
            assert reopened.application.repository.get(aggregate_id) == aggregate
        for document_id in runner.documents:
            assert document_id in folded
        for consent_id in runner.consents:
            consent: Any = folded[consent_id]
            assert consent.max_uses is None or consent.uses <= consent.max_uses
    finally:
        reopened.close()


def _seen(vault: Core, resident_id: str, at: datetime | None = None) -> Any:
    """What the auditor's replay shows of a resident: grade, documents, consents."""
    try:
        if at is None:
            resident = vault.residents.resident(resident_id)
            documents = [vault.documents.find(d) for d in resident.document_ids]
            consents = [vault.store.get(Consent, c, ConsentNotFound) for c in resident.consent_ids]
        else:
            replay = vault.audit.replay_resident(resident_id, at)
            resident, documents, consents = replay.resident, replay.documents, replay.consents
    except ResidentNotFound:
        return None
    return (
        resident.grade_label,
        [(d.id, d.status, d.trust_level, d.reuse_count, d.superseded_by) for d in documents],
        [(c.id, c.uses, c.revoked_at) for c in consents],
    )


@settings(max_examples=8)
@given(program=st.lists(command, min_size=1, max_size=20))
def test_replay_at_any_time_shows_the_state_as_it_stood_then(
    fresh_settings: Callable[[], Settings], program: list[tuple[Any, ...]]
) -> None:
    """After every step the live state is noted with the time; replaying each resident at
    that time, from the events, afterwards must show exactly that state."""
    clock = MovableClock()
    services = open_services(fresh_settings(), clock=clock)
    try:
        services.policies.current_version()  # published on first need: do it now
        runner = Program(services, clock)
        noted: list[tuple[datetime, dict[str, Any]]] = []
        for step in program:
            runner.run(step)
            at = clock.now()  # events carry the business clock's time
            noted.append((at, {r: _seen(services, r) for r in ("r1", "r2")}))
            clock.advance(timedelta(milliseconds=1))  # the next step's events are strictly later
        for at, state in noted:
            for resident_id, seen in state.items():
                assert _seen(services, resident_id, at) == seen, (at, resident_id)
    finally:
        services.close()
