"""What the read models and the ledger need of the database they live in (the event
store's own, so that a batch of view rows and the log position it reached commit
together). ``adapters.sql`` runs these on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Params = tuple[Any, ...] | list[Any]


class Write(Protocol):
    """Writes whose replies nobody waits for: ``write(statement, params)``, and
    ``write.many(statement, rows)`` for one statement over many rows."""

    def __call__(self, statement: str, params: Params) -> None: ...

    def many(self, statement: str, rows: Sequence[Params]) -> None: ...


class Run(Protocol):
    """Runs statements (written with ``?`` placeholders) in one transaction."""

    def __call__(self, statement: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """The statement's rows as tuples (none for a statement without a result)."""
        ...

    def schema_lock(self) -> None:
        """Make this transaction's schema changes (``CREATE … IF NOT EXISTS``) wait for any
        other process's, until it ends."""
        ...

    def locked(
        self, table: str, column: str, where: str, params: Params
    ) -> list[tuple[Any, ...]]:
        """``column`` of the rows of ``table`` that match ``where``, locked until the
        transaction ends."""
        ...

    def copy(self, table: str, columns: Sequence[str], rows: Sequence[Params]) -> None:
        """New rows in bulk (``COPY`` where the database has it)."""
        ...

    def columns(self, table: str) -> set[str]:
        """The names of a table's columns."""
        ...

    def pipeline(self) -> AbstractContextManager[Write]:
        """Writes sent without waiting for each one's reply; a failed one raises by the
        end of the block."""
        ...


class Database(Protocol):
    sqlite: bool
    """Whether this is SQLite (some statements differ)."""
    blob: str
    """The column type of byte strings."""

    def table(self, name: str) -> str:
        """A table name as statements write it (qualified with a schema where there is one)."""
        ...

    def transaction(self, *, commit: bool = True) -> AbstractContextManager[Run]: ...

    def read(self) -> AbstractContextManager[Run]:
        """Statements that only read, each seeing everything committed before it began.
        Not one snapshot for the block: a reader that needs one (SQLite gives it) must
        not count on it."""
        ...

    def missing_table(self, error: BaseException) -> bool:
        """Whether ``error`` says a table is not there."""
        ...

    def exclusive(self, name: str) -> AbstractContextManager[None]:
        """Hold the lock called ``name`` until the block ends, or raise :class:`LockHeld`
        at once when another process (or thread) holds it. A holder that dies lets go."""
        ...


class Waiter(Protocol):
    """Waits for the log to grow (a notification from the database, or a short sleep)."""

    def wait(self, stop: threading.Event) -> None: ...


class LockHeld(Exception):
    """Someone else holds the lock (:meth:`Database.exclusive`) named by the message."""


@dataclass(frozen=True)
class LogTable:
    """Where the event store keeps the log, for statements that read it inside the views'
    own transactions (they count uses and reuses there)."""

    name: str  # the table, as a statement names it (qualified where there is a schema)
    position: str  # the column that holds each event's notification id
    aggregate_id: str  # an expression: the event's originator id as the text str() gives
