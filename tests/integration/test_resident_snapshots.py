"""Residents' snapshots, on SQLite and on PostgreSQL: taken every
``RESIDENT_SNAPSHOT_EVERY`` events by the save that reaches it, their grade sealed, a cold
load reading the newest one and the events after it in one query, and a load from them the
same as replaying every event — before and after an erasure."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from adapters.eventstore import RESIDENT_SNAPSHOT_EVERY
from adapters.settings import Settings
from adapters.sql import quoted
from adapters.wiring import Services, open_services
from policy.scales import Grade
from tests.support import MovableClock
from vault.consent import Consent
from vault.errors import ConsentNotFound, ResidentNotFound
from vault.ids import resident_aggregate_id
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate
from vault.resident import Resident
from vault.store import Store

EVERY = RESIDENT_SNAPSHOT_EVERY
ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证", content_type="image/png")


def _consents(services: Services, resident_id: str, count: int) -> None:
    """``count`` more events on the resident: a consent filed each."""
    for _ in range(count):
        services.consents.grant(resident_id, ConsentRequest(
            department="civil-affairs", doc_types=("id-card",), purpose="elderly-card",
            valid_until=services.clock.now() + timedelta(days=30),
        ))


def _replayed(services: Services, aggregate_id: UUID) -> Resident:
    """The resident from every one of its events, no snapshot."""
    state: Any = None
    for event in services.application.events.get(aggregate_id):
        state = event.mutate(state)  # type: ignore[attr-defined]
    assert isinstance(state, Resident)
    return state


def _cold(services: Services, aggregate_id: UUID) -> Resident:
    """The resident as a load the cache cannot serve gives it."""
    store = Store(services.application)
    store.forget(aggregate_id)
    return store.get(Resident, aggregate_id, ResidentNotFound)


def _snapshots(services: Services, aggregate_id: UUID) -> list[StoredEvent]:
    snapshots = services.application.snapshots
    assert snapshots is not None
    return list(snapshots.recorder.select_events(aggregate_id))


def _graded(services: Services, resident_id: str, grade: Grade) -> UUID:
    services.residents.record_grades([GradeUpdate(resident_id, grade, services.clock.now(), 1)])
    return resident_aggregate_id(resident_id)


def test_a_snapshot_is_taken_at_each_multiple_and_a_load_from_it_equals_the_replay(
    services: Services,
) -> None:
    resident = _graded(services, "r1", Grade.B)  # registered, graded: versions 1 and 2
    _consents(services, "r1", 2 * EVERY + 3 - 2)
    assert [s.originator_version for s in _snapshots(services, resident)] == [EVERY, 2 * EVERY]
    loaded = _cold(services, resident)
    assert loaded.version == 2 * EVERY + 3
    assert vars(loaded) == vars(_replayed(services, resident))
    assert loaded.grade is Grade.B
    assert len(loaded.consent_scopes) == 2 * EVERY + 1


def test_a_cold_load_is_one_query_for_the_snapshot_and_the_events_after_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    resident = _graded(services, "r1", Grade.A)
    _consents(services, "r1", EVERY + 1)
    recorder = services.application.recorder
    read: list[tuple[int, int]] = []
    one_query = recorder.select_from_snapshot  # type: ignore[attr-defined]

    def counted(originator_id: UUID, table: str) -> Any:
        snapshot, events = one_query(originator_id, table)
        read.append((snapshot.originator_version, len(events)))
        return snapshot, events

    def not_these(*_: object, **__: object) -> None:
        raise AssertionError("a cold load read its events another way")

    monkeypatch.setattr(recorder, "select_from_snapshot", counted)
    monkeypatch.setattr(recorder, "select_events", not_these)
    assert _cold(services, resident).version == EVERY + 3
    assert read == [(EVERY, 3)]


def test_residents_read_together_start_from_their_snapshots(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Store.find_all`` reads the aggregates its cache lacks in one query where the
    recorder can (PostgreSQL): a snapshotted resident from its newest snapshot on, and
    each the same as its replay."""
    snapshotted = _graded(services, "r1", Grade.B)
    _consents(services, "r1", EVERY + 1)  # versions to EVERY + 3, a snapshot at EVERY
    other = _graded(services, "r2", Grade.A)  # no snapshot
    recorder = services.application.recorder
    read: list[list[tuple[Any, int]]] = []
    together = getattr(recorder, "select_events_of", None)
    if together is not None:
        def counted(ids: list[UUID], **kwargs: Any) -> list[StoredEvent]:
            stored: list[StoredEvent] = together(ids, **kwargs)
            read.append([(s.originator_id, s.originator_version) for s in stored])
            return stored

        monkeypatch.setattr(recorder, "select_events_of", counted)
    store = Store(services.application)
    store.forget(snapshotted, other)
    found = store.find_all([snapshotted, other])
    assert vars(found[snapshotted]) == vars(_replayed(services, snapshotted))
    assert vars(found[other]) == vars(_replayed(services, other))
    if together is not None:  # PostgreSQL: one query, the snapshot and what came after it
        rows = {i: [v for o, v in read[0] if o == i] for i in (snapshotted, other)}
        assert len(read) == 1
        assert rows == {snapshotted: [EVERY, EVERY + 1, EVERY + 2, EVERY + 3],
                        other: [1, 2]}


def test_the_grade_is_sealed_in_the_snapshot_and_reads_as_none_once_erased(
    services: Services,
) -> None:
    resident = _graded(services, "r1", Grade.C)
    _consents(services, "r1", EVERY - 2)
    [snapshot] = _snapshots(services, resident)
    stored = json.loads(snapshot.state)
    assert "grade" not in stored
    assert "grade" not in stored["state"]
    assert stored["personal"]  # sealed with the resident's key
    assert _cold(services, resident).grade is Grade.C

    services.residents.erase("r1")
    loaded = _cold(services, resident)
    assert loaded.is_erased
    assert loaded.grade is None
    assert vars(loaded) == vars(_replayed(services, resident))


def test_a_snapshot_that_cannot_be_stored_fails_nothing_and_the_load_replays(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    snapshots = services.application.snapshots
    assert snapshots is not None

    def broken(*_: object) -> None:
        raise OSError("the snapshot table is gone")

    monkeypatch.setattr(snapshots, "put", broken)
    with caplog.at_level(logging.WARNING, logger="civicvault.eventstore"):
        resident = _graded(services, "r1", Grade.B)
        _consents(services, "r1", EVERY)
    assert "snapshots not stored" in caplog.text
    assert _snapshots(services, resident) == []
    loaded = _cold(services, resident)
    assert loaded.version == EVERY + 2
    assert vars(loaded) == vars(_replayed(services, resident))


def test_other_aggregates_are_not_snapshotted(services: Services, clock: MovableClock) -> None:
    _graded(services, "r1", Grade.A)
    card = services.documents.submit("r1", [b"card"], ID_CARD).value.id
    consent = services.consents.grant("r1", ConsentRequest(
        department="civil-affairs", doc_types=("id-card",), purpose="elderly-card",
        valid_until=clock.now() + timedelta(days=30),
    )).consent
    for _ in range(EVERY):  # each fetch is an event on the consent
        fetched = services.fetches.fetch(
            officer="officer-li", department="civil-affairs", resident_id="r1",
            document_id=card, purpose="elderly-card",
        )
        assert b"".join(fetched.content) == b"card"
    assert Store(services.application).get(Consent, consent.id, ConsentNotFound).version > EVERY
    assert _snapshots(services, consent.id) == []


def test_a_store_made_before_snapshots_gets_their_table_at_the_next_start(
    backend_settings: Settings,
) -> None:
    with open_services(backend_settings) as services:
        resident = _graded(services, "r1", Grade.B)
        snapshots = services.application.snapshots
        assert snapshots is not None
        table: str = snapshots.recorder.events_table_name  # type: ignore[attr-defined]
        db = services.database
        with db.transaction() as run:
            run(f"DROP TABLE {table if db.sqlite else quoted(db.datastore.schema) + '.' + table}")
    with open_services(backend_settings) as services:
        _consents(services, "r1", EVERY)
        assert [s.originator_version for s in _snapshots(services, resident)] == [EVERY]
        assert vars(_cold(services, resident)) == vars(_replayed(services, resident))
