"""Database.exclusive on SQLite: one holder at a time, let go when the block ends however
it ends. (PostgreSQL's advisory lock is exercised by the rebuild tests in
tests/integration/test_projection_batches.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.sqlite import SQLiteDatastore

from adapters.sql import Database
from projections.database import LockHeld


@pytest.fixture(params=["file", "memory"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    name = str(tmp_path / "vault.sqlite3") if request.param == "file" else ":memory:"
    return Database(SQLiteDatastore(name))


def test_a_second_holder_is_refused_until_the_first_lets_go(database: Database) -> None:
    with database.exclusive("rebuild"):
        with pytest.raises(LockHeld, match="rebuild"), database.exclusive("rebuild"):
            pass
        with database.exclusive("other"):  # locks of other names are apart
            pass
    with database.exclusive("rebuild"):
        pass


def test_the_lock_is_let_go_when_its_block_fails(database: Database) -> None:
    with pytest.raises(RuntimeError), database.exclusive("rebuild"):
        raise RuntimeError("the holder failed")
    with database.exclusive("rebuild"):
        pass


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_two_databases_have_their_own_locks(tmp_path: Path, kind: str) -> None:
    one, two = (
        Database(SQLiteDatastore(str(tmp_path / name) if kind == "file" else ":memory:"))
        for name in ("one.sqlite3", "two.sqlite3")
    )
    with one.exclusive("rebuild"), two.exclusive("rebuild"):
        assert (tmp_path / "one.sqlite3.rebuild.lock").exists() == (kind == "file")


def test_the_same_file_opened_twice_shares_its_lock(tmp_path: Path) -> None:
    """As two processes on one database do (flock conflicts between open files)."""
    one, two = (Database(SQLiteDatastore(str(tmp_path / "vault.sqlite3"))) for _ in range(2))
    with one.exclusive("rebuild"), pytest.raises(LockHeld), two.exclusive("rebuild"):
        pass
