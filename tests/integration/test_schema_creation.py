"""Processes started at once make the tables they need without tripping over each other
(PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against a concurrent one), and a
start brings tables an earlier version made up to the ones described now."""

from __future__ import annotations

import threading
from typing import Any

from adapters.http.app import create_app
from adapters.settings import Settings
from adapters.sql import SCHEMA_LOCK, quoted
from adapters.wiring import open_services
from keys.master import MasterKey
from projections.tables import WORK_QUEUE


def _on_a_new_schema(url: str, data_dir: Any) -> Settings:
    return Settings(
        data_dir=data_dir, master_key=MasterKey.generate().to_base64(), database_url=url
    )


def test_services_and_apps_opened_at_once_on_a_new_schema_all_start(
    postgres_schema_url: str, tmp_path: Any
) -> None:
    settings = _on_a_new_schema(postgres_schema_url, tmp_path)
    start = threading.Barrier(4)
    failures: list[BaseException] = []
    opened: list[Any] = []

    def open_one() -> None:
        try:
            start.wait(30)
            services = open_services(settings)
            opened.append(services)
            create_app(services)  # the pages' sessions and sign-in flows make their tables
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for services in opened:
        services.close()
    assert failures == [], [repr(f) for f in failures]
    assert len(opened) == 4


def test_the_snapshot_table_is_made_under_the_schema_lock(
    postgres_url: str, postgres_schema_url: str, tmp_path: Any
) -> None:
    """The residents' snapshots are kept by a recorder the library's factory makes; its
    table waits for whoever holds the schema lock, as the events' table does (a race of
    two starts on a new schema once failed one of them on the snapshot table's type)."""
    import psycopg

    with open_services(_on_a_new_schema(postgres_schema_url, tmp_path)) as services:
        snapshots = services.application.snapshots
        assert snapshots is not None
        made = threading.Event()

        def make() -> None:
            snapshots.recorder.create_table()  # type: ignore[attr-defined]
            made.set()

        with psycopg.connect(postgres_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            maker = threading.Thread(target=make)
            maker.start()
            waited = not made.wait(1.0)
            holder.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        maker.join(30)
        assert waited, "the snapshot table was made while another process held the lock"
        assert made.is_set()


def _plan_of_a_requeue(services: Any) -> str:
    """How the database runs the delete every step's requeue makes."""
    db = services.database
    table = WORK_QUEUE.name(db, services.view_runner.generation())
    statement = f"DELETE FROM {table} WHERE application_id = ?"
    with db.transaction(commit=False) as run:
        if db.sqlite:
            return " ".join(str(row[-1]) for row in run(f"EXPLAIN QUERY PLAN {statement}",
                                                         ("x",)))
        run("SET LOCAL enable_seqscan = off")  # the table is tiny: ask whether it could
        return " ".join(str(row[0]) for row in run(f"EXPLAIN {statement}", ("x",)))


def test_a_generation_made_before_an_index_was_described_gets_it_at_the_next_start(
    backend_settings: Settings,
) -> None:
    """The work queue's index by application (without it, each decision's requeue
    scanned the whole queue) is made on a generation that an earlier version made."""
    with open_services(backend_settings) as services:
        assert "work_queue_g1_application" in _plan_of_a_requeue(services)
        db = services.database
        index = "cv_work_queue_g1_application"
        with db.transaction() as run:
            run(f"DROP INDEX {index if db.sqlite else quoted(db.datastore.schema) + '.' + index}")
        assert "work_queue_g1_application" not in _plan_of_a_requeue(services)
    with open_services(backend_settings) as services:
        assert "work_queue_g1_application" in _plan_of_a_requeue(services)
