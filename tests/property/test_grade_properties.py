"""Invariant 5: a credit update with an older sequence never replaces a newer grade."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from policy.scales import Grade
from tests.support import memory_vault
from vault.inputs import GradeUpdate

NOW = datetime(2026, 11, 27, tzinfo=UTC)
rows = st.tuples(
    st.sampled_from(["r1", "r2", "r3"]), st.sampled_from(list(Grade)), st.integers(0, 20)
)


@settings(max_examples=60)
@given(batches=st.lists(st.lists(rows, max_size=8), max_size=6))
def test_the_highest_sequence_seen_always_wins(
    batches: list[list[tuple[str, Grade, int]]],
) -> None:
    vault = memory_vault()
    expected: dict[str, tuple[int, Grade]] = {}
    total_applied = total_stale = 0
    for batch in batches:
        outcome = vault.residents.record_grades([GradeUpdate(r, g, NOW, s) for r, g, s in batch])
        total_applied += outcome.applied
        total_stale += outcome.stale
        for resident_id, grade, sequence in batch:
            current = expected.get(resident_id)
            if current is None or sequence > current[0]:
                expected[resident_id] = (sequence, grade)
        for resident_id, (sequence, grade) in expected.items():
            resident = vault.residents.resident(resident_id)
            assert (resident.grade_sequence, resident.grade) == (sequence, grade)
    assert total_applied + total_stale == sum(len(b) for b in batches)
