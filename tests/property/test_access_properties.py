"""Invariants 2–5 under random interleavings, on SQLite and PostgreSQL.

Random programs grant and revoke consents, fetch documents for various
departments and purposes, push credit grades (in and out of order), verify and
withdraw documents, and move the clock. A small model of the same steps says
what each fetch must do; the vault must agree on every one:

2. after a revoke, withdrawal, expiry or last use, no fetch under it succeeds;
3. every fetch, allowed or denied, leaves exactly one access event;
4. a department gets only what consent and policy allow, for the purpose it states;
5. an older credit sequence never replaces a newer grade.

And at the end, re-adjudication makes every recorded decision again, on the state
and the policy version of its time, and finds no mismatch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from adapters.settings import Settings
from adapters.wiring import Core, open_services
from policy.rules import default_policy_text
from policy.scales import Grade, TrustLevel
from tests.support import MovableClock
from vault.access import AccessAttempt
from vault.attestation import AttestationAttempt
from vault.errors import AccessDenied, AttestationDenied
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate

# (department, purpose) pairs of the default policy, and one it has no rule for.
ASKS = [
    ("civil-affairs", "subsistence-allowance"),
    ("housing", "housing-subsidy"),
    ("public-security", "residence-permit"),
    ("civil-affairs", "housing-subsidy"),
]
DOC_TYPES = ["id-card", "household-register"]

grant = st.tuples(
    st.just("grant"),
    st.sampled_from([0, 0, 0, 1, 2, 3]),
    st.sampled_from(DOC_TYPES),
    st.one_of(st.none(), st.integers(1, 3)),
    st.sampled_from([0, 0, 0, 3]),
)
fetch = st.tuples(st.just("fetch"), st.integers(0, 1), st.sampled_from([0, 0, 0, 1, 2, 3]))
step = st.one_of(
    grant,
    grant,
    fetch,
    fetch,
    fetch,
    st.tuples(st.just("revoke"), st.integers(0, 30)),
    st.tuples(st.just("grade"), st.sampled_from(list(Grade)), st.integers(0, 6)),
    st.tuples(st.just("verify"), st.integers(0, 30)),
    st.tuples(st.just("withdraw"), st.integers(0, 60)),
    st.tuples(st.just("advance"), st.integers(1, 6)),
    st.tuples(st.just("publish"), st.booleans()),
)
# Published mid-run: subsistence allowance only for grade A and trust B or better.
STRICTER = (
    "p, caseworker, civil-affairs, id-card, subsistence-allowance, A, B\n"
    "p, caseworker, housing, id-card, housing-subsidy, C, C\n"
    "g, o, caseworker, civil-affairs\n"
    "g, o, caseworker, housing\n"
    "p3, caseworker, civil-affairs, id-card, verify\n"
)
# Who verifies each document type (the policy in force decides whether they may).
VERIFIERS = {"id-card": "housing", "household-register": "civil-affairs"}


@dataclass
class ConsentModel:
    id: UUID
    department: str
    purpose: str
    doc_type: str
    valid_from: datetime
    valid_until: datetime
    max_uses: int | None
    uses: int = 0
    revoked: bool = False

    def usable(self, department: str, purpose: str, doc_type: str, now: datetime) -> bool:
        return (
            not self.revoked
            and (self.max_uses is None or self.uses < self.max_uses)
            and self.valid_from <= now < self.valid_until
            and (department, purpose, doc_type) == (self.department, self.purpose, self.doc_type)
        )


@dataclass
class DocumentModel:
    id: UUID
    doc_type: str
    trust: TrustLevel = TrustLevel.C
    withdrawn: bool = False


@dataclass
class Model:
    consents: list[ConsentModel] = field(default_factory=list)
    documents: list[DocumentModel] = field(default_factory=list)
    grade: Grade | None = None
    sequence: int | None = None


class Run:
    def __init__(self, vault: Core, clock: MovableClock) -> None:
        self.vault = vault
        self.clock = clock
        self.model = Model()
        self.point = vault.policies.decision_point()
        for doc_type in DOC_TYPES:
            document = vault.documents.submit(
                "r1", [doc_type.encode()], DocumentDetails(doc_type, doc_type)
            ).value
            self.model.documents.append(DocumentModel(document.id, doc_type))
        self.fetches = 0

    def grant(self, ask: int, doc_type: str, max_uses: int | None, delay: int) -> None:
        department, purpose = ASKS[ask]
        now = self.clock.now()
        valid_from = now + timedelta(days=delay)
        consent = self.vault.consents.grant(
            "r1",
            ConsentRequest(
                department=department,
                doc_types=(doc_type,),
                purpose=purpose,
                valid_until=valid_from + timedelta(days=10),
                valid_from=valid_from,
                max_uses=max_uses,
            ),
        ).consent
        self.model.consents.append(
            ConsentModel(
                consent.id,
                department,
                purpose,
                doc_type,
                valid_from,
                valid_from + timedelta(days=10),
                max_uses,
            )
        )

    def revoke(self, index: int) -> None:
        if self.model.consents:
            consent = self.model.consents[index % len(self.model.consents)]
            if not consent.revoked:
                self.vault.consents.revoke("r1", consent.id)
                consent.revoked = True

    def fetch(self, index: int, ask: int) -> None:
        document = self.model.documents[index % len(self.model.documents)]
        department, purpose = ASKS[ask]
        now = self.clock.now()
        usable = [
            c for c in self.model.consents if c.usable(department, purpose, document.doc_type, now)
        ]
        decision = self.point.decide(
            officer="o",
            department=department,
            doc_type=document.doc_type,
            purpose=purpose,
            grade=self.model.grade,
            trust=document.trust,
        )
        expected = bool(usable) and decision.allowed and not document.withdrawn
        before = _access_count(self.vault)
        try:
            fetched = self.vault.fetches.fetch(
                officer="o",
                department=department,
                resident_id="r1",
                document_id=document.id,
                purpose=purpose,
            )
            allowed = b"".join(fetched.content) == document.doc_type.encode()
        except AccessDenied:
            allowed = False
        assert _access_count(self.vault) == before + 1, "one access event per fetch"
        assert allowed == expected, (department, purpose, document, usable, decision)
        event(f"fetch {'allowed' if allowed else 'denied'}")
        if allowed:
            min(usable, key=lambda c: c.valid_until).uses += 1

    def grade(self, grade: Grade, sequence: int) -> None:
        self.vault.residents.record_grades([GradeUpdate("r1", grade, self.clock.now(), sequence)])
        if self.model.sequence is None or sequence > self.model.sequence:
            self.model.grade, self.model.sequence = grade, sequence
        resident = self.vault.residents.resident("r1")
        assert (resident.grade, resident.grade_sequence) == (self.model.grade, self.model.sequence)

    def verify(self, index: int) -> None:
        document = self.model.documents[index % len(self.model.documents)]
        if document.trust is TrustLevel.C and not document.withdrawn:
            department = VERIFIERS[document.doc_type]
            if self.point.attest(
                officer="o", department=department, doc_type=document.doc_type, act="verify"
            ).allowed:
                self.vault.documents.verify(department, "o", document.id)
                document.trust = TrustLevel.B
            else:
                with pytest.raises(AttestationDenied):
                    self.vault.documents.verify(department, "o", document.id)

    def withdraw(self, index: int) -> None:
        if index >= len(self.model.documents):
            return  # most withdraw steps are no-ops, so some documents stay to be fetched
        document = self.model.documents[index]
        if not document.withdrawn:
            self.vault.documents.withdraw("r1", document.id)
            document.withdrawn = True

    def advance(self, days: int) -> None:
        self.clock.advance(timedelta(days=days))

    def publish(self, stricter: bool) -> None:
        if stricter:
            self.vault.policies.publish(STRICTER)
        else:
            self.vault.policies.publish(default_policy_text())
        self.point = self.vault.policies.decision_point()


def _access_count(vault: Core) -> int:
    topic = get_topic(AccessAttempt.Recorded)
    return len(vault.events.select_notifications(1, 100_000, topics=[topic]))


@settings(max_examples=25)
@given(program=st.lists(step, min_size=10, max_size=40))
@example(  # allowed, then revoked, used up, withdrawn, expired, graded down
    program=[
        ("fetch", 0, 0), ("revoke", 0), ("fetch", 0, 0),
        ("grant", 0, "id-card", 1, 0), ("fetch", 0, 0), ("fetch", 0, 0),
        ("grant", 0, "household-register", None, 0), ("fetch", 1, 0), ("withdraw", 1),
        ("fetch", 1, 0), ("grant", 2, "id-card", None, 0), ("fetch", 0, 2),
        ("grade", Grade.D, 1), ("fetch", 0, 2), ("grade", Grade.A, 0), ("fetch", 0, 2),
        ("advance", 11), ("fetch", 0, 2),
    ]
)
def test_fetches_obey_consent_policy_and_grades_under_any_interleaving(
    fresh_settings: Callable[[], Settings], program: list[tuple[Any, ...]]
) -> None:
    clock = MovableClock()
    services = open_services(fresh_settings(), clock=clock)
    try:
        run = Run(services, clock)
        run.grant(0, "id-card", None, 0)  # so that some fetches have something to be allowed by
        for name, *args in program:
            getattr(run, name)(*args)
        report = services.audit.readjudicate()
        assert report.mismatches == []
        attestations = services.events.select_notifications(
            1, 100_000, topics=[get_topic(AttestationAttempt.Recorded)]
        )
        assert report.checked == _access_count(services) + len(attestations)
    finally:
        services.close()
