"""The event store's own database, for the tables kept beside the events (keys, read models).

Statements are written once with ``?`` placeholders and run on SQLite or PostgreSQL,
through the connection pool eventsourcing already opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.sqlite import SQLiteDatastore

Params = tuple[Any, ...] | list[Any]
Run = Callable[..., list[tuple[Any, ...]]]
"""run(statement, params=()) -> rows as tuples (empty for statements without a result)."""


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

            def run(statement: str, params: Params = ()) -> list[tuple[Any, ...]]:
                if not self.sqlite:
                    statement = statement.replace("?", "%s")
                cursor.execute(statement, params)
                if not self.sqlite and cursor.description is None:
                    return []
                rows = cursor.fetchall() or []
                return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]

            yield run


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
