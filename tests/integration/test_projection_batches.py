"""A batch of view writes is one transaction: pipelined writes still commit or roll back
together, and reads cannot slip into a pipeline where they would see no rows."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from eventsourcing.persistence import IntegrityError

from adapters.mapper import stored_sealed_personal
from adapters.sql import Database as SqlDatabase
from adapters.wiring import Services
from policy.scales import Grade
from projections import queries
from projections.database import Database
from projections.projector import Projector
from projections.runner import RebuildRunning, ViewRunner
from projections.schema import generation_exists, view_table
from tests.support import another_runner
from vault.access import ACCESS_TOPIC
from vault.consent import USED_TOPIC
from vault.document import REUSED_TOPIC
from vault.errors import AccessDenied
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate


def _table(db: Database) -> str:
    table = db.table("cv_test_batch")
    with db.transaction() as run:
        run(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, n INTEGER)")
        run(f"DELETE FROM {table}")
    return table


def test_pipelined_writes_commit_together(services: Services) -> None:
    db = services.view_runner.db
    table = _table(db)
    with db.transaction() as run, run.pipeline() as write:
        write.many(f"INSERT INTO {table} (id, n) VALUES (?, ?)", [(i, i) for i in range(50)])
        write(f"UPDATE {table} SET n = n + ? WHERE id = ?", (100, 7))
    with db.transaction(commit=False) as run:
        assert run(f"SELECT COUNT(*), SUM(n) FROM {table}")[0] == (50, sum(range(50)) + 100)


def test_a_failed_write_in_a_pipeline_rolls_back_the_whole_batch(services: Services) -> None:
    db = services.view_runner.db
    table = _table(db)

    def batch() -> None:
        with db.transaction() as run, run.pipeline() as write:
            write.many(f"INSERT INTO {table} (id, n) VALUES (?, ?)", [(1, 1), (2, 2)])
            write(f"INSERT INTO {table} (id, n) VALUES (?, ?)", (1, 1))  # duplicate key
            write(f"INSERT INTO {table} (id, n) VALUES (?, ?)", (3, 3))

    with pytest.raises(IntegrityError):
        batch()
    with db.transaction(commit=False) as run:
        assert run(f"SELECT COUNT(*) FROM {table}")[0] == (0,)


def test_rows_copied_in_bulk_read_back_as_they_were_given(services: Services) -> None:
    """``Run.copy`` (binary ``COPY`` on PostgreSQL, the column types from the catalog):
    text in any script, NULLs, bytes of every value, integers of either width."""
    db = services.view_runner.db
    table = db.table("cv_test_copy")
    rows = [
        ("居民身份证 \\ \t\n 'quoted'", None, bytes(range(256)), 2**40, 1),
        ("", "x", b"", -1, 0),
    ]
    for _ in range(2):  # the second time with the column types remembered
        with db.transaction() as run:
            run(f"DROP TABLE IF EXISTS {table}")
            run(f"CREATE TABLE {table} (t TEXT, u TEXT, b {db.blob}, big BIGINT, "
                "small INTEGER NOT NULL)")
            run.copy(table, ("small", "t", "u", "b", "big"), [(r[4], *r[:4]) for r in rows])
        with db.transaction(commit=False) as run:
            got = run(f"SELECT t, u, b, big, small FROM {table} ORDER BY small DESC")
        assert [(t, u, bytes(b), big, small) for t, u, b, big, small in got] == rows


def test_a_read_inside_a_pipeline_is_refused_where_it_would_see_nothing(
    services: Services,
) -> None:
    db = services.view_runner.db
    table = _table(db)
    with db.transaction() as run, run.pipeline() as write:
        write(f"INSERT INTO {table} (id, n) VALUES (?, ?)", (1, 1))
        if db.sqlite:  # no pipeline in-process: a read sees the write as usual
            assert run(f"SELECT COUNT(*) FROM {table}") == [(1,)]
        else:
            with pytest.raises(RuntimeError, match="pipeline"):
                run(f"SELECT COUNT(*) FROM {table}")


def test_a_rebuild_whose_batch_another_follower_wrote_first_still_completes(
    services: Services,
) -> None:
    """PostgreSQL's rebuild writes each batch while preparing the next; when a batch is
    refused (the views moved on without it), it catches up the plain way instead."""
    for number in range(12):
        services.residents.register(f"r{number}")
    head = services.events.head()
    runner = another_runner(services, rebuild_batch=3)
    real_commit = runner._commit
    commits = 0

    def commit_after_a_rival(batch: Any, **how: Any) -> tuple[int, int]:
        nonlocal commits
        commits += 1
        if commits == 2:  # another writer of the bulk load writes this batch first
            rival = runner._prepare(batch.generation, batch.start, batch.end - batch.start)
            real_commit(rival, **how)
        return real_commit(batch, **how)  # refused before its rows are copied

    runner._commit = commit_after_a_rival  # type: ignore[method-assign]
    assert runner.rebuild() == head
    generation = runner.generation()
    with runner.db.transaction(commit=False) as run:
        table = view_table(runner.db, "residents", generation)
        assert run(f"SELECT COUNT(*) FROM {table}") == [(12,)]


def _residents_served(runner: ViewRunner) -> int:
    with runner.db.transaction(commit=False) as run:
        table = view_table(runner.db, "residents", runner.generation())
        [(count,)] = run(f"SELECT COUNT(*) FROM {table}")
    return int(count)


def test_a_second_rebuild_is_refused_while_one_runs_and_the_first_completes(
    services: Services,
) -> None:
    """Two rebuilds at once would drop and fill each other's tables; the second is
    refused at once (on PostgreSQL from another session, on SQLite from another open
    lock file), and may start as soon as the first is done."""
    for number in range(12):
        services.residents.register(f"r{number}")
    first = another_runner(services, rebuild_batch=3)
    second = another_runner(services, rebuild_batch=3)
    serving = first.generation()
    refusals: list[str] = []

    def meanwhile(reached: int, head: int) -> None:
        if not refusals:
            with pytest.raises(RebuildRunning) as refused:
                second.rebuild()
            refusals.append(str(refused.value))
            assert second.generation() == serving  # it changed nothing

    assert first.rebuild(meanwhile) == services.events.head()
    assert refusals == ["another rebuild of the read models is running; wait for it to finish"]
    assert first.generation() == serving + 1
    assert _residents_served(first) == 12
    second.rebuild()  # the first let go of the lock
    assert second.generation() == serving + 2
    assert _residents_served(second) == 12


def test_a_rebuild_takes_over_only_once_it_has_got_as_far_as_the_serving_views(
    services: Services,
) -> None:
    """Between the rebuild's last batch and its switch, the live follower moves the
    serving views on: the switch waits for the new ones to catch up again, so a reader
    never sees the views go back (nor a position it waited for undone)."""
    for number in range(5):
        services.residents.register(f"r{number}")
    live = services.view_runner
    live.catch_up()
    runner = another_runner(services, rebuild_batch=2)
    real_switch = runner._switch
    moved_on: list[int] = []
    served_after_switch: list[int] = []

    def switch_after_the_serving_views_moved_on(old: int, new: int) -> bool:
        if not moved_on:
            services.residents.register("late")
            live.catch_up()
            moved_on.append(live.position(old))
        switched = real_switch(old, new)
        if switched:
            served_after_switch.append(runner.position())
        return switched

    runner._switch = switch_after_the_serving_views_moved_on  # type: ignore[method-assign]
    runner.rebuild()
    assert served_after_switch[0] >= moved_on[0]
    assert _residents_served(runner) == 6


def test_a_rebuild_under_writes_faster_than_it_does_not_chase_the_log_forever(
    services: Services,
) -> None:
    """Writes land faster than the rebuild applies them and the serving views' follower
    is behind: the rebuild goes as far as the log was when it began, then as far as the
    serving views, and takes over; the followers carry the new views on from there."""
    for number in range(6):
        services.residents.register(f"r{number}")
    live = services.view_runner
    live.catch_up()
    head = services.events.head()
    runner = another_runner(services, rebuild_batch=2)
    batches = 0

    def three_more_writes_per_batch(reached: int, now: int) -> None:
        nonlocal batches
        batches += 1
        if batches < 200:  # a bound, so that a rebuild that chases still ends
            for _ in range(3):
                services.residents.register(f"w{batches}-{_}")

    assert runner.rebuild(three_more_writes_per_batch) >= head
    assert batches < 20
    live.catch_up()
    assert live.position() == services.events.head()
    assert _residents_served(live) == 6 + 3 * min(batches, 199)


def test_a_batch_for_a_dropped_generation_is_refused_and_leaves_nothing_behind(
    services: Services,
) -> None:
    """A follower that prepared a batch for the old generation commits it after a rebuild
    dropped that generation; and a process starts with the old generation in mind."""
    services.residents.register("r0")
    live = services.view_runner
    old = live.generation()
    late = live._prepare(old, live.position(old), 10)
    assert late is not None
    another_runner(services).rebuild()
    assert live._commit(late) == (0, late.start)
    another_runner(services)  # reads the serving generation, the new one
    with live.db.transaction(commit=False) as run:
        tracked = run(
            f"SELECT generation FROM {live.db.table('cv_view_tracking')} ORDER BY generation"
        )
    assert tracked == [(old + 1,)]
    assert _residents_served(live) == 1
    with pytest.raises(Exception, match="cv_residents_g"), live.db.transaction() as run:
        run(f"SELECT COUNT(*) FROM {view_table(live.db, 'residents', old)}")


def test_a_batch_committing_to_the_old_generation_as_it_is_dropped_finishes_first(
    services: Services,
) -> None:
    """A follower locks the old generation's position, then writes its tables, just as
    the rebuild that has switched away from it drops them: the drop waits for the batch
    (it takes the position first, too) rather than deadlocking with it."""
    for number in range(5):
        services.residents.register(f"r{number}")
    live = services.view_runner
    live.catch_up()
    old = live.generation()
    services.residents.register("late")
    late = live._prepare(old, live.position(old), 10)
    assert late is not None
    runner = another_runner(services, rebuild_batch=2)
    switched, writing = threading.Event(), threading.Event()
    real_switch, real_flush = runner._switch, late.projector.flush

    def switch(old: int, new: int) -> bool:
        done = real_switch(old, new)
        if done:  # the drop comes next: let the late batch take its lock first
            switched.set()
            assert writing.wait(10)
        return done

    def flush(write: Any) -> None:
        writing.set()
        time.sleep(0.3)  # the rebuild goes on to drop meanwhile
        real_flush(write)

    runner._switch = switch  # type: ignore[method-assign]
    late.projector.flush = flush  # type: ignore[method-assign]
    results: dict[str, Any] = {}

    def follower() -> None:
        assert switched.wait(10)
        results["late"] = live._commit(late)

    thread = threading.Thread(target=follower)
    thread.start()
    results["rebuild"] = runner.rebuild()
    thread.join(20)
    assert results == {"late": (late.events, late.end), "rebuild": late.end}
    with live.db.transaction(commit=False) as run:
        tracked = run(f"SELECT generation FROM {live.db.table('cv_view_tracking')}")
        assert tracked == [(old + 1,)]
        assert not generation_exists(run, live.db, old)


def test_a_read_that_names_a_generation_a_rebuild_just_dropped_reads_the_new_one(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads take which generation serves, then read its tables: a rebuild can switch
    and drop in between (PostgreSQL reads in read-committed mode)."""
    services.residents.register("r0")
    runner = services.view_runner
    runner.catch_up()
    old = runner.generation()
    another_runner(services).rebuild()
    real = queries.active_generation
    answered: list[int] = []

    def serving(run: Any, db: Database) -> int:
        """The first read still sees the old generation serving."""
        answered.append(old if not answered else real(run, db))
        return answered[-1]

    monkeypatch.setattr(queries, "active_generation", serving)
    assert services.views.resident("r0") is not None
    assert answered == [old, old + 1]


def test_a_rebuild_that_fails_lets_go_of_its_lock_and_the_old_views_serve_on(
    services: Services,
) -> None:
    for number in range(5):
        services.residents.register(f"r{number}")
    runner = another_runner(services, rebuild_batch=2)
    runner.catch_up()
    serving = runner.generation()

    def fail(reached: int, head: int) -> None:
        raise RuntimeError("the operator's terminal went away")

    with pytest.raises(RuntimeError):
        runner.rebuild(fail)
    assert runner.generation() == serving
    assert _residents_served(runner) == 5
    runner.rebuild()
    assert runner.generation() == serving + 1
    assert _residents_served(runner) == 5


def _indexes(db: Database, generation: int) -> list[str]:
    """How the generation's access log is keyed and indexed, with the generation's
    number taken out."""
    table = f"cv_access_g{generation}"
    if db.sqlite:  # the table's own statement too, which holds its keys
        query = "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL"
        params: tuple[str, ...] = (table,)
    else:
        query = "SELECT indexdef FROM pg_indexes WHERE schemaname = ? AND tablename = ?"
        params = (cast(SqlDatabase, db).datastore.schema, table)
    with db.transaction(commit=False) as run:
        rows = run(query, params)
    return sorted(str(sql).replace(f"_g{generation}", "_gN") for (sql,) in rows)


def test_a_rebuilt_access_log_is_keyed_as_a_new_one_is(services: Services) -> None:
    """PostgreSQL's rebuild loads the access log before keying it; once in service it has
    the same keys and indexes as a generation created keyed, and they hold."""
    _fetched_three_times(services)
    runner = services.view_runner
    runner.catch_up()
    before = runner.generation()
    keyed = _indexes(runner.db, before)
    assert len(keyed) >= 3
    runner.rebuild()
    generation = runner.generation()
    assert generation == before + 1
    assert _indexes(runner.db, generation) == keyed
    table = view_table(runner.db, "access", generation)
    with runner.db.transaction(commit=False) as run:
        [row] = run(f"SELECT * FROM {table} ORDER BY position LIMIT 1")
    with pytest.raises(IntegrityError), runner.db.transaction() as run:
        run(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)


def _fetched_three_times(services: Services) -> tuple[Any, Any]:
    """A document and a consent, then three fetches: three uses and three reuses."""
    document = services.documents.submit(
        "r1", [b"card"], DocumentDetails("id-card", "居民身份证")
    ).value
    consent = services.consents.grant(
        "r1",
        ConsentRequest(
            department="civil-affairs", doc_types=("id-card",),
            purpose="subsistence-allowance", valid_until=datetime.now(UTC) + timedelta(days=1),
        ),
    ).consent
    for _ in range(3):
        services.fetches.fetch(
            officer="o", department="civil-affairs", resident_id="r1",
            document_id=document.id, purpose="subsistence-allowance",
        )
    return document, consent


def test_uses_and_reuses_are_counted_from_the_log_within_the_batch_only(
    services: Services,
) -> None:
    """The counters take the uses and reuses of the batch's stretch of the log, counted by
    the database, and nothing outside it; stretches add up."""
    runner = services.view_runner
    document, consent = _fetched_three_times(services)
    notifications = services.events.select_notifications(1, 1000)
    uses = [n.id for n in notifications if n.topic == USED_TOPIC]
    reuses = [n.id for n in notifications if n.topic == REUSED_TOPIC]
    assert len(uses) == len(reuses) == 3
    assert uses[0] < reuses[0] < uses[1]
    generation = runner.generation()
    db = runner.db
    projector = Projector(db, generation, runner.log_table)
    opened = services.events.decode(notifications)
    for notification, event in zip(notifications, opened, strict=True):
        projector.apply(event, notification.id)

    def counters() -> tuple[Any, Any]:
        with db.transaction(commit=False) as run:
            [(used,)] = run(
                f"SELECT uses FROM {view_table(db, 'consents', generation)} "
                "WHERE consent_id = ?", (str(consent.id),)
            )
            [(reused,)] = run(
                f"SELECT reuse_count FROM {view_table(db, 'library', generation)} "
                "WHERE document_id = ?", (str(document.id),)
            )
        return used, reused

    with db.transaction() as run:
        for table in ("consents", "library"):
            run(f"DELETE FROM {view_table(db, table, generation)}")
        with run.pipeline() as write:
            projector.flush(write)
            projector.add_counts(write, 1, reuses[0])  # the first fetch only
    assert counters() == (1, 1)
    with db.transaction() as run, run.pipeline() as write:
        projector.add_counts(write, reuses[0] + 1, notifications[-1].id)  # the rest
        projector.add_counts(write, notifications[-1].id + 1, notifications[-1].id + 50)
    assert counters() == (3, 3)


def test_access_rows_keep_the_events_own_sealed_fields_and_older_rows_still_read(
    services: Services,
) -> None:
    """The runner stores an access event's sealed reasons as they are (nothing opened or
    sealed again); a row the projector sealed itself (an event decoded opened, as rows
    were written before) reads the same; erasure makes both unreadable."""
    runner = services.view_runner
    document = services.documents.submit(
        "r1", [b"card"], DocumentDetails("id-card", "居民身份证")
    ).value
    with pytest.raises(AccessDenied) as denied:
        services.fetches.fetch(
            officer="o", department="housing", resident_id="r1",
            document_id=document.id, purpose="housing-subsidy",
        )
    runner.catch_up()
    [entry] = services.views.access_log("r1", limit=10)
    recorded = services.application.repository.get(denied.value.access_id)
    assert entry.reasons == recorded.reasons  # every reason, as recorded (the officer saw less)
    generation = runner.generation()
    table = view_table(runner.db, "access", generation)
    with runner.db.transaction(commit=False) as run:
        [(stored,)] = run(
            f"SELECT personal FROM {table} WHERE access_id = ?", (str(entry.access_id),)
        )
    [notification] = [
        n for n in services.events.select_notifications(1, 100) if n.topic == ACCESS_TOPIC
    ]
    [state] = services.application.mapper.to_stored_states([notification])
    assert state is not None
    sealed = stored_sealed_personal(state)
    assert sealed is not None
    assert bytes(stored) == sealed  # the event's own sealed bytes
    # A row sealed by the projector, from the event decoded opened:
    [opened] = services.events.decode([notification])
    projector = Projector(runner.db, generation, runner.log_table)
    projector.key_of = services.keys.data_key
    with runner.db.transaction() as run:
        run(f"DELETE FROM {table} WHERE access_id = ?", (str(entry.access_id),))
        projector.apply(opened, entry.position)
        with run.pipeline() as write:
            projector.flush(write)
    [again] = services.views.access_log("r1", limit=10)
    assert again.reasons == recorded.reasons
    services.residents.erase("r1")
    runner.catch_up()
    assert [e.reasons for e in services.views.access_log("r1", limit=10)] == [None]


def test_the_runner_asks_keys_only_for_rows_the_projector_seals(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grades and documents are sealed into their rows by the projector, so their owners'
    keys are wanted; an access event taken in from its stored state brings its own sealed
    fields (no key), and one given decoded is sealed here (its owner's key)."""
    runner = services.view_runner
    services.residents.register("r1")
    services.residents.register("r2")
    services.residents.record_grades([GradeUpdate("r1", Grade.B, datetime.now(UTC), 1)])
    document = services.documents.submit(
        "r2", [b"card"], DocumentDetails("id-card", "居民身份证")
    ).value
    runner.catch_up()
    asked: list[set[str]] = []
    data_keys = services.keys.data_keys

    def spied(resident_ids: Any) -> dict[str, bytes | None]:
        asked.append(set(resident_ids))
        return data_keys(resident_ids)

    with pytest.raises(AccessDenied):
        services.fetches.fetch(
            officer="o", department="housing", resident_id="r2",
            document_id=document.id, purpose="housing-subsidy",
        )
    monkeypatch.setattr(services.keys, "data_keys", spied)
    runner.catch_up()  # the access event alone
    assert [entry.resident_id for entry in services.views.access_log("r2", limit=10)] == ["r2"]
    assert set().union(*asked) == set()
    notifications = services.events.select_notifications(1, 100)
    access = [n for n in notifications if n.topic == ACCESS_TOPIC]
    documents = [n for n in notifications if n.topic.endswith("Document.Submitted")]
    grades = [n for n in notifications if n.topic.endswith("Resident.GradeRecorded")]
    projector = Projector(runner.db, runner.generation(), runner.log_table)
    assert projector.owners_to_seal(services.events.decode(access)) == {"r2"}
    assert projector.owners_to_seal(services.events.decode(documents)) == {"r2"}
    assert projector.owners_to_seal(services.events.decode(grades)) == {"r1"}


def test_the_recorder_describes_its_table_as_the_log_reads(services: Services) -> None:
    """What the read models' statements read of the log's table (each event's position,
    topic and aggregate id as text) is what the recorder gives out for it."""
    _fetched_three_times(services)
    log = services.view_runner.log_table
    with services.view_runner.db.transaction(commit=False) as run:
        rows = run(f"SELECT {log.position}, topic, {log.aggregate_id} FROM {log.name} "
                   f"ORDER BY {log.position}")
    assert rows == [
        (n.id, n.topic, str(n.originator_id))
        for n in services.events.select_notifications(1, 1000)
    ]


def test_a_library_read_for_some_types_at_a_moment_leaves_out_the_rest(
    services: Services,
) -> None:
    """What a department's listing reads: only the document types its consents cover,
    and only documents not expired at the moment it asks."""
    now = services.clock.now()
    filed = {
        name: services.documents.submit(
            "r1", [name.encode()], DocumentDetails(doc_type, name, expires_at=expires)
        ).value.id
        for name, doc_type, expires in [
            ("expires soon", "diploma", now + timedelta(days=1)),
            ("expires later", "diploma", now + timedelta(days=30)),
            ("never expires", "diploma", None),
            ("other type", "id-card", None),
        ]
    }
    services.view_runner.catch_up()

    def read(**which: Any) -> set[str]:
        entries = services.views.library("r1", limit=10, **which)
        return {name for name, id_ in filed.items() if str(id_) in {e.document_id for e in entries}}

    assert read() == set(filed)
    assert read(doc_types={"diploma"}) == set(filed) - {"other type"}
    assert read(doc_types=set()) == set()
    assert read(doc_types={"diploma"}, unexpired_at=now + timedelta(days=2)) == {
        "expires later", "never expires"
    }
    assert read(unexpired_at=now + timedelta(days=1)) == set(filed) - {"expires soon"}


def test_current_documents_by_type_are_the_newest_active_ones_of_each_type_alone(
    services: Services,
) -> None:
    """What an acceptance looks its materials up in: one read for all the service's
    document types, each type's newest active documents first, at most so many of each,
    however many of another type the resident holds."""
    def submit(resident: str, doc_type: str) -> str:
        return str(services.documents.submit(
            resident, [doc_type.encode()], DocumentDetails(doc_type, doc_type)
        ).value.id)

    cards = [submit("r1", "id-card") for _ in range(3)]
    registers = [submit("r1", "household-register") for _ in range(5)]
    withdrawn = submit("r1", "income-proof")
    services.documents.withdraw("r1", withdrawn)
    submit("r2", "id-card")
    submit("r1", "diploma")
    services.view_runner.catch_up()

    found = services.views.current_documents(
        "r1", {"id-card", "household-register", "income-proof"}, per_type=2
    )
    assert found == {
        "id-card": cards[::-1][:2],
        "household-register": registers[::-1][:2],
        "income-proof": [],
    }
    assert services.views.current_documents("r1", set(), per_type=2) == {}
    assert services.views.current_documents("nobody", {"id-card"}, per_type=2) == {
        "id-card": []
    }


def test_a_reader_waiting_for_a_position_ends_the_followers_gathering(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between rounds the follower gathers events for a while; a read-your-writes read
    waiting for a position it has not reached ends that wait, whatever its length."""
    from projections import runner as runner_module

    monkeypatch.setattr(runner_module, "GATHER_SECONDS", 600.0)  # the test would time out
    runner = services.view_runner
    stop = threading.Event()
    follower = threading.Thread(target=runner.follow, args=(stop,), daemon=True)
    services.documents.submit("r1", [b"a"], DocumentDetails("id-card", "t"))
    follower.start()
    try:
        assert runner.wait_for(services.events.head(), timeout=60)
        # The round that applied the upload found less than a batch: the follower gathers.
        position = services.documents.submit("r1", [b"b"], DocumentDetails("id-card", "u"))
        assert position.position is not None
        assert runner.wait_for(position.position, timeout=60)
    finally:
        stop.set()
        follower.join(60)
    assert not follower.is_alive()
