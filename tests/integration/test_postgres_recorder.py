"""The PostgreSQL recorder saves in one round trip and still serialises writers on the table lock.

The lock is what keeps notification ids in commit order, so that a reader
following the log never skips an event committed late with a lower id.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
from psycopg import sql

from adapters.postgres_recorder import OrderedPostgresApplicationRecorder
from adapters.settings import Settings
from adapters.wiring import open_services
from keys.master import MasterKey


def test_saves_wait_for_the_exclusive_table_lock(postgres_schema_url: str, tmp_path: Path) -> None:
    services = open_services(
        Settings(
            data_dir=tmp_path,
            master_key=MasterKey.generate().to_base64(),
            database_url=postgres_schema_url,
        )
    )
    try:
        recorder = services.vault.recorder
        assert isinstance(recorder, OrderedPostgresApplicationRecorder)
        services.vault.register_resident("first")
        schema = postgres_schema_url.split("schema=")[1]
        table = sql.Identifier(schema, recorder.events_table_name)
        saved = threading.Event()
        with psycopg.connect(postgres_schema_url.split("?", maxsplit=1)[0]) as blocker:
            # ROW SHARE conflicts with EXCLUSIVE but not with a plain INSERT's ROW EXCLUSIVE:
            # only a writer that takes the ordering lock has to wait for it.
            blocker.execute(sql.SQL("LOCK TABLE {} IN ROW SHARE MODE").format(table))

            def save() -> None:
                services.vault.register_resident("second")
                saved.set()

            writer = threading.Thread(target=save)
            writer.start()
            assert not saved.wait(1.0), "the save did not wait for the table lock"
            blocker.rollback()
        assert saved.wait(10.0)
        writer.join()
        ids = [n.id for n in recorder.select_notifications(1, 10)]
        assert ids == [1, 2]
    finally:
        services.close()
