"""What a department is shown as fetchable is exactly what a fetch would be allowed: the
listing's rule (vault.judgement.fetchable) agrees with the fetch's (judge_fetch)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policy.scales import Grade
from tests.support import MovableClock, fetchable_documents, memory_vault
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate
from vault.judgement import judge_fetch

DEPARTMENTS = ["civil-affairs", "housing"]
PURPOSES = ["subsistence-allowance", "housing-subsidy"]
# Mostly the pairs the policy has rules for, so that many fetches could be allowed.
SCOPES = [
    ("civil-affairs", "subsistence-allowance"),
    ("housing", "housing-subsidy"),
    ("civil-affairs", "housing-subsidy"),
]
DOC_TYPES = ["id-card", "income-proof", "property-cert"]
VERIFIERS = {"id-card": "housing", "income-proof": "civil-affairs", "property-cert": "housing"}

documents = st.lists(
    st.tuples(
        st.sampled_from(DOC_TYPES),
        st.sampled_from(["kept", "verified", "withdrawn"]),
        st.sampled_from([None, 1, 1, 40]),  # expires in N days
    ),
    max_size=5,
)
consents = st.lists(
    st.tuples(
        st.sampled_from(SCOPES),
        st.lists(st.sampled_from(DOC_TYPES), min_size=1, max_size=3, unique=True),
        st.sampled_from([None, 1]),  # max uses
        st.booleans(),  # revoked
        st.sampled_from([0, 3]),  # starts in N days
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=200)
@given(
    grade=st.sampled_from([None, *Grade]),
    docs=documents,
    grants=consents,
    fetches=st.integers(0, 2),
    days_later=st.sampled_from([0, 2, 2, 10, 50]),
)
def test_what_a_department_is_shown_is_what_it_may_fetch(
    grade: Grade | None,
    docs: list[tuple[str, str, int | None]],
    grants: list[tuple[Any, ...]],
    fetches: int,
    days_later: int,
) -> None:
    clock = MovableClock()
    vault = memory_vault(clock)
    now = clock.now()
    vault.residents.register("r1")
    if grade is not None:
        vault.residents.record_grades([GradeUpdate("r1", grade, now, 1)])
    for doc_type, fate, expires in docs:
        expires_at = now + timedelta(days=expires) if expires else None
        document = vault.documents.submit(
            "r1", [b"scan"], DocumentDetails(doc_type, "t", expires_at=expires_at)
        ).value
        if fate == "verified":
            vault.documents.verify(VERIFIERS[doc_type], "officer", document.id)
        elif fate == "withdrawn":
            vault.documents.withdraw("r1", document.id)
    for (department, purpose), doc_types, max_uses, revoked, starts in grants:
        granted = vault.consents.grant(
            "r1",
            ConsentRequest(
                department, tuple(doc_types), purpose,
                valid_until=now + timedelta(days=30),
                valid_from=now + timedelta(days=starts) if starts else None,
                max_uses=max_uses,
            ),
        )
        if revoked:
            vault.consents.revoke("r1", granted.consent.id)
    resident = vault.residents.resident("r1")
    for _ in range(fetches):  # uses some consents up
        for document_id in resident.document_ids:
            for department, purpose in zip(DEPARTMENTS, PURPOSES, strict=True):
                try:
                    vault.fetches.fetch(
                        officer="o", department=department, resident_id="r1",
                        document_id=document_id, purpose=purpose,
                    )
                except Exception:  # denied fetches are part of the history
                    continue
    clock.advance(timedelta(days=days_later))
    point = vault.policies.decision_point()
    resident = vault.residents.resident("r1")
    for department in DEPARTMENTS:
        for purpose in PURPOSES:
            shown = fetchable_documents(
                vault, officer="o", department=department, resident_id="r1", purpose=purpose
            )
            consents_held = [
                vault.consents.consent("r1", c) for c in resident.consents_for(department, purpose)
            ]
            allowed = [
                d
                for d in map(vault.documents.find, resident.document_ids)
                if judge_fetch(
                    resident=resident, document=d, consents=consents_held, officer="o",
                    department=department, purpose=purpose, point=point, now=clock.now(),
                ).allowed
            ]
            assert [d.id for d in shown] == [d.id for d in allowed]
