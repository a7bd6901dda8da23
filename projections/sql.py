"""The event store's own database, for the tables kept beside the events (keys, read models).

Statements are written once with ``?`` placeholders and run on SQLite or PostgreSQL,
through the connection pool eventsourcing already opened.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.sqlite import SQLiteDatastore

Params = tuple[Any, ...] | list[Any]


class Write:
    """Writes whose replies nobody waits for: ``write(statement, params)``, and
    ``write.many(statement, rows)`` for one statement over many rows."""

    def __init__(self, cursor: Any, sql: Callable[[str], str], sqlite: bool) -> None:
        self._cursor = cursor
        self._sql = sql
        self._sqlite = sqlite

    def __call__(self, statement: str, params: Params) -> None:
        self._cursor.execute(self._sql(statement), params)

    def many(self, statement: str, rows: Sequence[Params]) -> None:
        if rows:
            self._cursor.executemany(self._sql(statement), rows)

    def add_counts(self, table: str, column: str, key: str, counts: Mapping[str, int]) -> None:
        """Add ``counts[k]`` to ``column`` of the row whose text ``key`` is ``k``, for each
        ``k``. On PostgreSQL in one statement over one JSON object, instead of one
        statement per row: a batch of a busy log changes thousands of counters (and the
        object is cheaper to send than two arrays, element by element)."""
        if not counts:
            return
        if self._sqlite:  # in-process: one statement per row costs little
            self.many(
                f"UPDATE {table} SET {column} = {column} + ? WHERE {key} = ?",
                [(n, row) for row, n in counts.items()],
            )
            return
        self._cursor.execute(
            f"UPDATE {table} AS t SET {column} = t.{column} + u.n::bigint "
            f"FROM json_each_text(%s::json) AS u(k, n) WHERE t.{key} = u.k",
            (json.dumps(counts),),
        )


class Run:
    """Runs statements in one transaction: ``run(statement, params=())`` -> rows as tuples
    (empty for statements without a result)."""

    def __init__(self, cursor: Any, sqlite: bool) -> None:
        self._cursor = cursor
        self._sqlite = sqlite
        self._pipelined = False

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

    def copy(self, table: str, columns: Sequence[str], rows: Sequence[Params]) -> None:
        """New rows in bulk: ``COPY … FROM STDIN`` on PostgreSQL (far less work per row
        for the server than one insert each), plain inserts on SQLite."""
        if not rows:
            return
        names = ", ".join(columns)
        if self._sqlite:
            marks = ", ".join("?" * len(columns))
            self._cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            return
        with self._cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def pipeline(self) -> Iterator[Write]:
        """Writes sent without waiting for each one's reply (PostgreSQL's pipeline mode),
        so a batch of them costs about one round trip. A failed write raises by the end
        of the block, and the transaction rolls back whole as usual."""
        write = Write(self._cursor, self._sql, self._sqlite)
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

    def table(self, name: str) -> str:
        """A table name, qualified with the PostgreSQL schema when there is one."""
        return name if self.sqlite else f"{quoted(self.datastore.schema)}.{quoted(name)}"

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[Run]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield Run(cursor, self.sqlite)


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
