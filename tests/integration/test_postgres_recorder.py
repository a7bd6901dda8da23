"""The PostgreSQL recorder saves in one round trip and still serialises writers on the table lock.

The lock is what keeps notification ids in commit order, so that a reader
following the log never skips an event committed late with a lower id.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql

from adapters.postgres_recorder import OrderedPostgresApplicationRecorder
from adapters.settings import Settings
from adapters.wiring import Services, open_services
from keys.master import MasterKey
from policy.scales import Grade
from tests.support import MovableClock
from vault.ids import resident_aggregate_id
from vault.inputs import DocumentDetails, GradeUpdate
from vault.resident import Resident
from vault.store import Store


@pytest.fixture
def pg_services(
    postgres_schema_url: str, tmp_path: Path, clock: MovableClock
) -> Iterator[Services]:
    """A vault on its own PostgreSQL schema."""
    opened = open_services(
        Settings(
            data_dir=tmp_path,
            master_key=MasterKey.generate().to_base64(),
            database_url=postgres_schema_url,
        ),
        clock=clock,
    )
    try:
        yield opened
    finally:
        opened.close()


def test_saves_wait_for_the_exclusive_table_lock(
    pg_services: Services, postgres_schema_url: str
) -> None:
    recorder = pg_services.application.recorder
    assert isinstance(recorder, OrderedPostgresApplicationRecorder)
    pg_services.residents.register("first")
    schema = postgres_schema_url.split("schema=")[1]
    table = sql.Identifier(schema, recorder.events_table_name)
    saved = threading.Event()
    with psycopg.connect(postgres_schema_url.split("?", maxsplit=1)[0]) as blocker:
        # ROW SHARE conflicts with EXCLUSIVE but not with a plain INSERT's ROW EXCLUSIVE:
        # only a writer that takes the ordering lock has to wait for it.
        blocker.execute(sql.SQL("LOCK TABLE {} IN ROW SHARE MODE").format(table))

        def save() -> None:
            pg_services.residents.register("second")
            saved.set()

        writer = threading.Thread(target=save)
        writer.start()
        assert not saved.wait(1.0), "the save did not wait for the table lock"
        blocker.rollback()
    assert saved.wait(10.0)
    writer.join()
    ids = [n.id for n in recorder.select_notifications(1, 10)]
    assert ids == [1, 2]


def test_failed_saves_leave_no_gap_in_the_notification_ids(
    pg_services: Services, clock: MovableClock
) -> None:
    """A sequence would be spent by each failed insert; event N must stay leaf N - 1."""
    store = pg_services.store
    pg_services.residents.register("first")
    aggregate_id = resident_aggregate_id("first")
    registered = clock.now()
    clock.advance(timedelta(seconds=1))
    fresh = pg_services.residents.resident("first")
    fresh.file_document(uuid4(), clock.now())
    store.save(fresh)
    for _ in range(3):  # a copy as it stood before: each save conflicts and rolls back
        stale = store.as_of(aggregate_id, registered)
        assert isinstance(stale, Resident)
        stale.file_document(uuid4(), clock.now())
        with pytest.raises(IntegrityError):
            store.save(stale)
    pg_services.residents.register("second")
    ids = [n.id for n in pg_services.events.select_notifications(1, 100)]
    assert ids == [1, 2, 3]


def test_the_binary_read_returns_what_the_library_reads(pg_services: Services) -> None:
    """Every way of asking for notifications (start, stop, topics, exclusive start) gives
    the library's answer, field for field."""
    for number in range(6):
        pg_services.residents.register(f"r{number}")
    pg_services.residents.record_grades(
        [GradeUpdate(f"r{n}", Grade.A, datetime.now(UTC), 1) for n in range(6)]
    )
    recorder = pg_services.application.recorder
    topics = sorted({n.topic for n in recorder.select_notifications(1, 100)})
    asks: list[tuple[tuple[object, ...], dict[str, object]]] = [
        ((1, 100), {}),
        ((3, 4), {}),
        ((None, 5), {}),
        ((2, 100, 9), {}),
        ((1, 100), {"topics": topics[:1]}),
        ((4, 3), {"topics": topics, "inclusive_of_start": False}),
        ((500, 10), {}),
    ]
    for args, kwargs in asks:
        ours = recorder.select_notifications(*args, **kwargs)  # type: ignore[arg-type]
        library = PostgresApplicationRecorder.select_notifications(
            recorder, *args, **kwargs
        )
        assert ours == library, (args, kwargs)
        assert all(type(n.state) is bytes for n in ours)
    assert len(recorder.select_notifications(1, 100)) == 12


def test_several_aggregates_the_cache_lacks_are_read_in_one_query(
    pg_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = pg_services.application.recorder
    store = Store(pg_services.application)
    details = DocumentDetails(doc_type="id-card", title="居民身份证", content_type="image/png")
    ids = [pg_services.documents.submit("r1", [body], details).value.id
           for body in (b"one", b"two", b"three")]
    store.forget(*ids)
    store.find(ids[0])  # cached: brought up to date by a query of its own
    queries: list[tuple[str, int]] = []
    select_events, select_events_of = recorder.select_events, recorder.select_events_of

    def one(originator_id: UUID, **kwargs: object) -> object:
        queries.append(("one", 1))
        return select_events(originator_id, **kwargs)  # type: ignore[arg-type]

    def many(originator_ids: list[UUID], **kwargs: object) -> object:
        queries.append(("many", len(originator_ids)))
        return select_events_of(originator_ids, **kwargs)

    monkeypatch.setattr(recorder, "select_events", one)
    monkeypatch.setattr(recorder, "select_events_of", many)
    found = store.find_all(ids)
    assert sorted(queries) == [("many", 2), ("one", 1)]
    assert list(found) == ids
    assert [d.version for d in found.values()] == [  # type: ignore[attr-defined]
        len(select_events(i)) for i in ids
    ]


def test_a_cold_fetch_reads_the_resident_and_the_document_in_one_query(
    pg_services: Services, tmp_path: Path, clock: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that holds nothing yet (another process wrote it all) judges a fetch on
    the resident, the document and the consent: the first two read together, then the
    consent the resident names, not one query an aggregate."""
    from vault.inputs import ConsentRequest

    document = pg_services.documents.submit("r1", [b"card"], DocumentDetails(
        doc_type="id-card", title="居民身份证", content_type="image/png")).value
    consent = pg_services.consents.grant("r1", ConsentRequest(
        department="civil-affairs", doc_types=("id-card",), purpose="elderly-card",
        valid_until=clock.now() + timedelta(days=30),
    )).consent
    resident = resident_aggregate_id("r1")
    other = open_services(pg_services.settings.model_copy(update={"data_dir": tmp_path}),
                          clock=clock)
    try:
        recorder = other.application.recorder
        reads: list[tuple[str, set[UUID]]] = []
        for name in ("select_events_of", "select_from_snapshot", "select_events"):
            method = getattr(recorder, name)

            def counted(ids: Any, *args: object, _name: str = name, _method: Any = method,
                        **kwargs: object) -> object:
                wanted = set(ids) if isinstance(ids, list) else {ids}
                if wanted & {resident, document.id, consent.id}:  # not the policy's
                    reads.append((_name, wanted))
                return _method(ids, *args, **kwargs)

            monkeypatch.setattr(recorder, name, counted)
        fetched = other.fetches.fetch(
            officer="officer-li", department="civil-affairs", resident_id="r1",
            document_id=document.id, purpose="elderly-card",
        )
        assert b"".join(fetched.content) == b"card"
        assert fetched.access.allowed
        assert reads == [("select_events_of", {resident, document.id}),
                         ("select_from_snapshot", {consent.id})]
    finally:
        other.close()
