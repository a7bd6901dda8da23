"""The event store's own database, for the tables kept beside the events (keys, read models).

Statements are written once with ``?`` placeholders and run on SQLite or PostgreSQL,
through the connection pool eventsourcing already opened (:class:`projections.database.Database`).
"""

from __future__ import annotations

import fcntl
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteDatastore

from projections.database import LockHeld, Params

POLL_SECONDS = 0.05
"""How often a follower on SQLite, which cannot notify, looks for new events."""


class Write:
    """Writes whose replies nobody waits for: ``write(statement, params)``, and
    ``write.many(statement, rows)`` for one statement over many rows."""

    def __init__(self, cursor: Any, sql: Callable[[str], str]) -> None:
        self._cursor = cursor
        self._sql = sql

    def __call__(self, statement: str, params: Params) -> None:
        self._cursor.execute(self._sql(statement), params)

    def many(self, statement: str, rows: Sequence[Params]) -> None:
        if rows:
            self._cursor.executemany(self._sql(statement), rows)


SCHEMA_LOCK = 0x63_76_5F_64_64_6C  # "cv_ddl": the advisory lock of schema changes


class Run:
    """Runs statements in one transaction: ``run(statement, params=())`` -> rows as tuples
    (empty for statements without a result)."""

    def __init__(
        self, cursor: Any, sqlite: bool, column_types: dict[str, dict[str, str]] | None = None
    ) -> None:
        self._cursor = cursor
        self._sqlite = sqlite
        self._pipelined = False
        self._column_types = {} if column_types is None else column_types

    def _sql(self, statement: str) -> str:
        return statement if self._sqlite else statement.replace("?", "%s")

    def __call__(self, statement: str, params: Params = ()) -> list[tuple[Any, ...]]:
        if self._pipelined:
            raise RuntimeError("a read inside a pipeline would not see its rows")
        cursor = self._cursor
        cursor.execute(self._sql(statement), params)
        if not self._sqlite and cursor.description is None:
            return []
        rows = cursor.fetchall() or []
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]

    def schema_lock(self) -> None:
        """Make this transaction's schema changes wait for any other process's, until it
        ends. PostgreSQL's ``CREATE TABLE IF NOT EXISTS`` is not safe against a concurrent
        one: both may find the table missing, and one then fails on the catalogue's unique
        index (two processes started at once). SQLite has one writer at a time anyway."""
        if not self._sqlite:
            self(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")

    def locked(
        self, table: str, column: str, where: str, params: Params
    ) -> list[tuple[Any, ...]]:
        """``column`` of the rows of ``table`` that match ``where``, locked until the
        transaction ends: ``FOR UPDATE`` on PostgreSQL; on SQLite, which locks the whole
        database for a writer, by a write that changes nothing, taken before the read."""
        if not self._sqlite:
            return self(f"SELECT {column} FROM {table} WHERE {where} FOR UPDATE", params)
        self(f"UPDATE {table} SET {column} = {column} WHERE {where}", params)
        return self(f"SELECT {column} FROM {table} WHERE {where}", params)

    def copy(self, table: str, columns: Sequence[str], rows: Sequence[Params]) -> None:
        """New rows in bulk: ``COPY … FROM STDIN`` on PostgreSQL (far less work per row
        for the server than one insert each), plain inserts on SQLite.

        The copy is in PostgreSQL's binary format, with the columns' types read from the
        catalog once per table: the text format escapes every byte string as hex on the
        client (in a rebuild, under the interpreter lock the decoding needs) and the
        server parses it back."""
        if not rows:
            return
        names = ", ".join(columns)
        if self._sqlite:
            marks = ", ".join("?" * len(columns))
            self._cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            return
        types = self._types_of(table)
        with self._cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([types[column] for column in columns])
            for row in rows:
                copy.write_row(row)

    def columns(self, table: str) -> set[str]:
        """The names of a table's columns."""
        if self._sqlite:
            return {str(row[1]) for row in self(f"PRAGMA table_info({table})")}
        return set(self._types_of(table, fresh=True))

    def _types_of(self, table: str, *, fresh: bool = False) -> dict[str, str]:
        """A PostgreSQL table's columns and their types, remembered."""
        types = None if fresh else self._column_types.get(table)
        if types is None:
            rows = self(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = ?::regclass AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            types = self._column_types[table] = {str(name): str(kind) for name, kind in rows}
        return types

    @contextmanager
    def pipeline(self) -> Iterator[Write]:
        """Writes sent without waiting for each one's reply (PostgreSQL's pipeline mode),
        so a batch of them costs about one round trip. A failed write raises by the end
        of the block, and the transaction rolls back whole as usual."""
        write = Write(self._cursor, self._sql)
        if self._sqlite:  # in-process: there is no round trip to save
            yield write
            return
        self._pipelined = True
        try:
            with self._cursor.connection.pipeline():
                yield write
        finally:
            self._pipelined = False


class Database:
    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore
        self.sqlite = isinstance(datastore, SQLiteDatastore)
        self.blob = "BLOB" if self.sqlite else "BYTEA"
        self._column_types: dict[str, dict[str, str]] = {}  # by table, for Run.copy

    def table(self, name: str) -> str:
        """A table name, qualified with the PostgreSQL schema when there is one."""
        return name if self.sqlite else f"{quoted(self.datastore.schema)}.{quoted(name)}"

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[Run]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield Run(cursor, self.sqlite, self._column_types)

    @contextmanager
    def read(self) -> Iterator[Run]:
        """Statements that only read, each seeing everything committed before it began.

        On PostgreSQL they run outside a transaction (the pool's connections are in
        autocommit mode): one round trip each, without the BEGIN and ROLLBACK that a
        read-only transaction adds around them, and READ COMMITTED gives every
        statement of a transaction its own snapshot anyway. On SQLite, in a read
        transaction (in process: nothing to save)."""
        if self.sqlite:
            with self.transaction(commit=False) as run:
                yield run
            return
        with self.datastore.cursor() as cursor:
            yield Run(cursor, self.sqlite, self._column_types)

    def missing_table(self, error: BaseException) -> bool:
        """Whether ``error`` (as the datastore raised it, or what it was raised from) says
        a table is not there."""
        cause: BaseException | None = error
        while cause is not None:
            if getattr(cause, "sqlstate", None) == "42P01":  # PostgreSQL's undefined_table
                return True
            if self.sqlite and "no such table" in str(cause):
                return True
            cause = cause.__cause__ or cause.__context__
        return False

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the lock called ``name`` on this database until the block ends, or raise
        :class:`LockHeld` at once when another process (or thread) holds it.

        Whoever holds it dies with it: on PostgreSQL it is a session's advisory lock,
        which the server lets go when the session ends; on SQLite, an ``flock`` on a file
        beside the database, which the kernel lets go when the process ends. A killed
        holder never leaves it taken. On PostgreSQL it keeps one pooled connection (idle,
        outside any transaction) until the block ends."""
        if self.sqlite:
            with _file_lock(self.datastore.pool, name):
                yield
            return
        key = f"civicvault {self.datastore.schema} {name}"
        with self.datastore.get_connection() as connection:  # in autocommit mode
            [row] = connection.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s)) AS taken", (key,)
            ).fetchall()
            if not row["taken"]:  # the pool's connections give rows as dicts
                raise LockHeld(name)
            try:
                yield
            finally:  # the pool hands the session out again: the lock must not go with it
                try:
                    connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
                except Exception:  # closed instead (the pool drops it), lock and all
                    connection.close()


_memory_locks: weakref.WeakKeyDictionary[Any, dict[str, threading.Lock]] = (
    weakref.WeakKeyDictionary()
)  # by the in-memory database's pool, then by name
_memory_locks_guard = threading.Lock()


@contextmanager
def _file_lock(pool: Any, name: str) -> Iterator[None]:
    """``flock`` on ``<database>.<name>.lock``; for an in-memory database (which lives
    in one process, with its pool), a lock in this process."""
    if pool.is_sqlite_memory_mode:
        with _memory_locks_guard:
            lock = _memory_locks.setdefault(pool, {}).setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):
            raise LockHeld(name)
        try:
            yield
        finally:
            lock.release()
        return
    database = str(pool.db_name).removeprefix("file:").split("?")[0]
    # Opened apart from any other holder's (flock conflicts between open files, even
    # in one process) and never deleted (a deleted lock file could be locked twice).
    with Path(f"{database}.{name}.lock").open("a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(name) from None
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


class LogWakeups:
    """Waits for new events in the log: LISTEN for the events table's NOTIFY on PostgreSQL
    (one connection of its own while in use), a short sleep on SQLite."""

    def __init__(self, db: Database, channel: str | None) -> None:
        self._db = db
        self._channel = channel
        self._conn: Any = None

    def __enter__(self) -> LogWakeups:
        if not self._db.sqlite and self._channel:
            import psycopg  # the postgres extra
            from psycopg import sql

            pool = self._db.datastore.pool
            self._conn = psycopg.connect(pool.conninfo, **pool.kwargs, autocommit=True)
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        return self

    def wait(self, stop: threading.Event) -> None:
        if self._conn is None:
            stop.wait(POLL_SECONDS)
            return
        for _ in self._conn.notifies(timeout=1.0, stop_after=1):
            break

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def from_snapshot_statement(events: str, snapshots: str, mark: str) -> str:
    """One query for an aggregate's newest snapshot (its first column 1; none if there is
    none) and its events after it (0), in version order: the two tables, named as the
    statement should (schema and quotes), both keyed by (originator_id, originator_version);
    three ``mark`` placeholders, each the originator id."""
    columns = "originator_id, originator_version, topic, state"
    return (
        f"SELECT 1 AS snapshot, {columns} FROM (SELECT {columns} FROM {snapshots} "
        f"WHERE originator_id = {mark} ORDER BY originator_version DESC LIMIT 1) AS newest "
        f"UNION ALL SELECT 0, {columns} FROM {events} WHERE originator_id = {mark} "
        f"AND originator_version > COALESCE((SELECT MAX(originator_version) FROM {snapshots} "
        f"WHERE originator_id = {mark}), 0) "
        "ORDER BY 1 DESC, 3"
    )


def split_snapshot(
    rows: Sequence[tuple[int, Any, int, str, bytes]],
) -> tuple[StoredEvent | None, list[StoredEvent]]:
    """The rows of :func:`from_snapshot_statement` as the snapshot (or None) and the events."""
    stored = [
        (flag, StoredEvent(originator_id=i, originator_version=v, topic=t, state=bytes(s)))
        for flag, i, v, t, s in rows
    ]
    snapshot = stored[0][1] if stored and stored[0][0] == 1 else None
    return snapshot, [event for flag, event in stored if flag == 0]
