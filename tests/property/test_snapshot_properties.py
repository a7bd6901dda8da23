"""A resident loaded through its snapshots is the resident every event replays to, whatever
its history — grades, documents, consents, an erasure anywhere in it or none — on SQLite and on
PostgreSQL (the one-query load), with the cache forgotten before each load."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.eventstore import RESIDENT_SNAPSHOT_EVERY
from adapters.settings import Settings
from adapters.wiring import Services, open_services
from policy.scales import Grade
from tests.support import MovableClock
from vault.errors import ResidentNotFound
from vault.ids import resident_aggregate_id
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate
from vault.resident import Resident
from vault.store import Store

steps = st.lists(
    st.one_of(
        st.tuples(st.just("grade"), st.sampled_from(list(Grade))),
        st.tuples(st.just("consent"), st.sampled_from(["elderly-card", "disability-subsidy"])),
        st.tuples(st.just("document"), st.sampled_from(["id-card", "income-proof"])),
    ),
    min_size=RESIDENT_SNAPSHOT_EVERY,
    max_size=3 * RESIDENT_SNAPSHOT_EVERY,
)


def _apply(services: Services, resident_id: str, step: tuple[str, Any], sequence: int) -> None:
    kind, arg = step
    now = services.clock.now()
    if kind == "grade":
        services.residents.record_grades([GradeUpdate(resident_id, arg, now, sequence)])
    elif kind == "consent":
        services.consents.grant(resident_id, ConsentRequest(
            department="civil-affairs", doc_types=("id-card",), purpose=arg,
            valid_until=now + timedelta(days=30),
        ))
    else:
        services.documents.submit(resident_id, [b"page"], DocumentDetails(arg, "材料"))


def _loaded_and_replayed(services: Services, resident_id: str) -> tuple[Any, Any]:
    aggregate_id = resident_aggregate_id(resident_id)
    store = Store(services.application)
    store.forget(aggregate_id)
    loaded = store.get(Resident, aggregate_id, ResidentNotFound)
    replayed: Any = None
    for event in services.application.events.get(aggregate_id):
        replayed = event.mutate(replayed)  # type: ignore[attr-defined]
    return vars(loaded), vars(replayed)


@settings(max_examples=10, deadline=None)
@given(history=steps, erase_after=st.none() | st.integers(0, 3 * RESIDENT_SNAPSHOT_EVERY))
def test_a_resident_loaded_through_snapshots_is_the_replayed_resident(
    fresh_settings: Callable[[], Settings],
    history: list[tuple[str, Any]],
    erase_after: int | None,
) -> None:
    clock = MovableClock()
    with open_services(fresh_settings(), clock=clock) as services:
        services.residents.register("r1")
        for n, step in enumerate(history, start=1):
            clock.advance(timedelta(minutes=1))
            if n - 1 == erase_after:
                services.residents.erase("r1")
                break
            _apply(services, "r1", step, n)
            if n % RESIDENT_SNAPSHOT_EVERY == 0:
                loaded, replayed = _loaded_and_replayed(services, "r1")
                assert loaded == replayed
        loaded, replayed = _loaded_and_replayed(services, "r1")
        assert loaded == replayed
        if loaded["erased_at"] is not None:
            assert loaded["grade"] is None
