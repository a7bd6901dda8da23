"""Copies of aggregates: equal to the original, independent of it, and as the library's."""

from __future__ import annotations

import pickle
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policy.scales import Grade
from tests.support import MovableClock, memory_vault
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate

ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证", filename="身份证.pdf")


def _aggregates(documents: int, consents: int, graded: bool, erased: bool) -> list[Any]:
    clock = MovableClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    vault = memory_vault(clock)
    vault.residents.register("r1")
    ids = [vault.documents.submit("r1", [b"card"], ID_CARD).value.id for _ in range(documents)]
    granted = [
        vault.consents.grant(
            "r1",
            ConsentRequest(
                department="civil-affairs", doc_types=("id-card",),
                purpose="subsistence-allowance", valid_until=clock.now() + timedelta(days=1),
                max_uses=3,
            ),
        ).consent.id
        for _ in range(consents)
    ]
    if graded:
        vault.residents.record_grades([GradeUpdate("r1", Grade.A, clock.now(), 1)])
    if ids and granted:
        vault.fetches.fetch(
            officer="o", department="civil-affairs", resident_id="r1",
            document_id=ids[0], purpose="subsistence-allowance",
        )
    if erased:
        vault.residents.erase("r1")
    resident = vault.residents.resident("r1")
    found = [resident]
    found += [vault.application.repository.get(i) for i in ids]
    found += [vault.application.repository.get(i) for i in granted]
    vault.close()
    return found


@settings(max_examples=20, deadline=None)
@given(
    documents=st.integers(0, 3),
    consents=st.integers(0, 2),
    graded=st.booleans(),
    erased=st.booleans(),
)
def test_a_copy_equals_the_original_and_shares_nothing_mutable(
    documents: int, consents: int, graded: bool, erased: bool
) -> None:
    for aggregate in _aggregates(documents, consents, graded, erased):
        copied = deepcopy(aggregate)
        assert copied is not aggregate
        assert type(copied) is type(aggregate)
        assert copied == aggregate  # the library's equality: same type, same __dict__
        assert copied == pickle.loads(pickle.dumps(aggregate))  # as the generic copy
        before = pickle.dumps(aggregate)
        for name, value in vars(aggregate).items():
            if isinstance(value, list | dict | set):
                assert vars(copied)[name] is not value, name
                vars(copied)[name].clear()
        assert pickle.dumps(aggregate) == before  # emptying the copy's containers changed nothing
