"""A batch of view writes is one transaction: pipelined writes still commit or roll back
together, and reads cannot slip into a pipeline where they would see no rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError

from adapters.wiring import Services
from policy.scales import Grade
from projections.projector import Projector
from projections.runner import ViewRunner
from projections.schema import view_table
from projections.sql import Database
from vault.access import ACCESS_TOPIC
from vault.consent import USED_TOPIC, Consent
from vault.document import REUSED_TOPIC
from vault.errors import AccessDenied
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate
from vault.personal import stored_sealed_personal


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


def test_counts_are_added_to_their_rows_only(services: Services) -> None:
    db = services.view_runner.db
    table = db.table("cv_test_counts")
    with db.transaction() as run:
        run(f"CREATE TABLE IF NOT EXISTS {table} (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        run(f"DELETE FROM {table}")
        for key in ("a", "b", "c"):
            run(f"INSERT INTO {table} (k, n) VALUES (?, ?)", (key, 10))
    with db.transaction() as run, run.pipeline() as write:
        write.add_counts(table, "n", "k", {"a": 1, "c": 5, "missing": 7})
        write.add_counts(table, "n", "k", {})
    with db.transaction() as run, run.pipeline() as write:
        write.add_counts(table, "n", "k", {"a": 2})
    with db.transaction(commit=False) as run:
        assert run(f"SELECT k, n FROM {table} ORDER BY k") == [("a", 13), ("b", 10), ("c", 15)]


def test_overlapped_catch_up_whose_batch_another_follower_wrote_first_still_completes(
    services: Services,
) -> None:
    """PostgreSQL's rebuild writes each batch while preparing the next; when a batch is
    refused (the views moved on without it), it catches up the plain way instead."""
    vault = services.vault
    for number in range(12):
        vault.register_resident(f"r{number}")
    head = vault.recorder.max_notification_id()
    runner = ViewRunner(vault, services.view_runner.db, rebuild_batch=3)
    generation = runner.generation()
    assert runner.position(generation) == 0
    real_commit = runner._commit
    commits = 0

    def commit_after_a_rival(batch: Any, **how: Any) -> tuple[int, int]:
        nonlocal commits
        commits += 1
        if commits == 2:  # another follower writes this batch first
            real_commit(runner._prepare(batch.generation, batch.start, batch.end - batch.start))
        return real_commit(batch, **how)  # refused before its rows are copied

    runner._commit = commit_after_a_rival  # type: ignore[method-assign]
    runner._catch_up_overlapped(generation, None)
    assert runner.position(generation) == head
    with runner.db.transaction(commit=False) as run:
        table = view_table(runner.db, "residents", generation)
        assert run(f"SELECT COUNT(*) FROM {table}") == [(12,)]


def test_a_use_counts_the_same_decoded_or_not(services: Services) -> None:
    db = services.view_runner.db
    generation = services.view_runner.generation()
    at = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    consent = Consent(  # type: ignore[call-arg]
        resident_id="r1", department="civil-affairs", doc_types=["id-card"],
        purpose="subsistence-allowance", valid_from=at, valid_until=at + timedelta(days=1),
        max_uses=None, granted_at=at,
    )
    for _ in range(3):
        consent.use(department="civil-affairs", doc_type="id-card",
                    purpose="subsistence-allowance", document_id=uuid4(), request_id="r",
                    now=at)
    granted, *used = consent.collect_events()
    projector = Projector(db, generation)
    projector.apply(granted, 1)
    projector.apply(used[0], 2)  # decoded
    assert projector.count(USED_TOPIC, used[1].originator_id)  # undecoded
    assert projector.count(USED_TOPIC, str(used[2].originator_id))  # its id as text
    assert not projector.count("vault.consent:Consent.Revoked", consent.id)
    with db.transaction() as run, run.pipeline() as write:
        projector.flush(write)
    with db.transaction(commit=False) as run:
        table = view_table(db, "consents", generation)
        assert run(f"SELECT uses FROM {table} WHERE consent_id = ?", (str(consent.id),)) == [
            (3,)
        ]


def test_access_rows_keep_the_events_own_sealed_fields_and_older_rows_still_read(
    services: Services,
) -> None:
    """The runner stores an access event's sealed reasons as they are (nothing opened or
    sealed again); a row the projector sealed itself (an event decoded opened, as rows
    were written before) reads the same; erasure makes both unreadable."""
    vault, runner = services.vault, services.view_runner
    document = vault.submit_document("r1", [b"card"], DocumentDetails("id-card", "居民身份证"))
    with pytest.raises(AccessDenied) as denied:
        vault.fetch_document(
            officer="o", department="housing", resident_id="r1",
            document_id=document.id, purpose="housing-subsidy",
        )
    runner.catch_up()
    [entry] = services.views.access_log("r1", limit=10)
    assert entry.reasons == denied.value.reasons
    generation = runner.generation()
    table = view_table(runner.db, "access", generation)
    with runner.db.transaction(commit=False) as run:
        [(stored,)] = run(
            f"SELECT personal FROM {table} WHERE access_id = ?", (str(entry.access_id),)
        )
    [notification] = [
        n for n in vault.recorder.select_notifications(1, 100) if n.topic == ACCESS_TOPIC
    ]
    [state] = vault.mapper.to_stored_states([notification])
    assert state is not None
    sealed = stored_sealed_personal(state)
    assert sealed is not None
    assert bytes(stored) == sealed  # the event's own sealed bytes
    # A row sealed by the projector, from the event decoded opened:
    [opened] = vault.mapper.to_domain_events([notification])
    projector = Projector(runner.db, generation)
    projector.key_of = vault.keys.data_key
    with runner.db.transaction() as run:
        run(f"DELETE FROM {table} WHERE access_id = ?", (str(entry.access_id),))
        projector.apply(opened, entry.position)
        with run.pipeline() as write:
            projector.flush(write)
    [again] = services.views.access_log("r1", limit=10)
    assert again.reasons == denied.value.reasons
    vault.erase_resident("r1")
    runner.catch_up()
    assert [e.reasons for e in services.views.access_log("r1", limit=10)] == [None]


def test_the_runner_asks_keys_only_for_rows_the_projector_seals(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grades and documents are sealed into their rows by the projector, so their owners'
    keys are wanted; an access event taken in from its stored state brings its own sealed
    fields (no key), and one given decoded is sealed here (its owner's key)."""
    vault, runner = services.vault, services.view_runner
    vault.register_resident("r1")
    vault.register_resident("r2")
    vault.record_grades([GradeUpdate("r1", Grade.B, datetime.now(UTC), 1)])
    document = vault.submit_document("r2", [b"card"], DocumentDetails("id-card", "居民身份证"))
    runner.catch_up()
    asked: list[set[str]] = []
    data_keys = vault.keys.data_keys

    def spied(resident_ids: Any) -> dict[str, bytes | None]:
        asked.append(set(resident_ids))
        return data_keys(resident_ids)

    with pytest.raises(AccessDenied):
        vault.fetch_document(
            officer="o", department="housing", resident_id="r2",
            document_id=document.id, purpose="housing-subsidy",
        )
    monkeypatch.setattr(vault.keys, "data_keys", spied)
    runner.catch_up()  # the access event alone
    assert [entry.resident_id for entry in services.views.access_log("r2", limit=10)] == ["r2"]
    assert set().union(*asked) == set()
    notifications = vault.recorder.select_notifications(1, 100)
    access = [n for n in notifications if n.topic == ACCESS_TOPIC]
    documents = [n for n in notifications if n.topic.endswith("Document.Submitted")]
    grades = [n for n in notifications if n.topic.endswith("Resident.GradeRecorded")]
    projector = Projector(runner.db, runner.generation())
    assert projector.owners_to_seal(vault.mapper.to_domain_events(access)) == {"r2"}
    assert projector.owners_to_seal(vault.mapper.to_domain_events(documents)) == {"r2"}
    assert projector.owners_to_seal(vault.mapper.to_domain_events(grades)) == {"r1"}


def test_the_recorder_counts_each_aggregates_events_of_some_topics_in_a_range(
    services: Services,
) -> None:
    vault = services.vault
    document = vault.submit_document("r1", [b"card"], DocumentDetails("id-card", "居民身份证"))
    vault.grant_consent(
        "r1",
        ConsentRequest(
            department="civil-affairs", doc_types=("id-card",),
            purpose="subsistence-allowance", valid_until=datetime.now(UTC) + timedelta(days=1),
        ),
    )
    for _ in range(3):  # each a use of the one consent and a reuse of the one document
        vault.fetch_document(
            officer="o", department="civil-affairs", resident_id="r1",
            document_id=document.id, purpose="subsistence-allowance",
        )
    notifications = vault.recorder.select_notifications(1, 1000)
    head = notifications[-1].id
    topics = sorted({n.topic for n in notifications})
    recorder: Any = vault.recorder
    counted = recorder.count_events(1, head, topics)
    expected: dict[tuple[str, str], int] = {}
    for n in notifications:
        key = (str(n.originator_id), n.topic)
        expected[key] = expected.get(key, 0) + 1
    assert {(str(o), t): c for o, t, c in counted} == expected
    assert expected[(str(document.id), REUSED_TOPIC)] == 3
    assert recorder.count_events(head + 1, head + 10, topics) == []
    last = notifications[-1]
    assert [(str(o), t, c) for o, t, c in recorder.count_events(head, head, [last.topic])] == [
        (str(last.originator_id), last.topic, 1)
    ]
    assert recorder.count_events(1, head, ["no.such:Topic"]) == []
