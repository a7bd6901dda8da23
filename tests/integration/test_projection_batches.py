"""A batch of view writes is one transaction: pipelined writes still commit or roll back
together, and reads cannot slip into a pipeline where they would see no rows."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import IntegrityError

from adapters.wiring import Services
from projections.sql import Database


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
