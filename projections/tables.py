"""The read-model tables, each described once: its columns (name, type, whether it may be
null, its default), its keys and indexes. Statements and rows are derived from the
description by column name: the DDL, the insert, the select list, a row written by
keyword (:attr:`Table.row`) and a row read back by name (:attr:`Table.read`)."""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from projections.database import Database, Run

Kind = Literal["text", "integer", "bigint", "bytes"]
_SQL_TYPES = {"text": "TEXT", "integer": "INTEGER", "bigint": "BIGINT"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    null: bool = False
    default: int | str | None = None
    """What a row written without this column holds; a column added to a table after
    it was first made needs one (the rows already there take it)."""

    def ddl(self, db: Database) -> str:
        kind = db.blob if self.kind == "bytes" else _SQL_TYPES[self.kind]
        not_null = "" if self.null else " NOT NULL"
        return f"{self.name} {kind}{not_null}{self._default()}"

    def _default(self) -> str:
        if self.default is None:
            return ""
        if isinstance(self.default, int):
            return f" DEFAULT {int(self.default)}"
        if not re.fullmatch(r"[a-z0-9-]*", self.default):
            raise ValueError(f"{self.name}: default {self.default!r} is not a plain word")
        return f" DEFAULT '{self.default}'"


@dataclass(frozen=True)
class Index:
    suffix: str  # the index is named cv_<view>_g<generation>_<suffix>
    columns: tuple[str, ...]


class Table:
    """One read model's table, in as many generations as rebuilds make."""

    def __init__(
        self,
        view: str,
        columns: tuple[Column, ...],
        *,
        key: tuple[str, ...],
        unique: tuple[str, ...] = (),
        indexes: tuple[Index, ...] = (),
    ) -> None:
        self.view = view
        self.columns = columns
        self.names = tuple(c.name for c in columns)
        for name in (*key, *unique, *(n for i in indexes for n in i.columns)):
            if name not in self.names:
                raise ValueError(f"{view}: no column {name}")
        self.key = key
        self.unique = unique
        self.indexes = indexes
        self.select = ", ".join(self.names)
        """The columns, in order, as a select list (rows read so map by :attr:`read`)."""
        self.row: Callable[..., tuple[Any, ...]] = _row_writer(view, columns)
        """A row to insert, written by keyword (a column that may be null or has a
        default may be left out), as a tuple in column order."""
        make_type: Any = namedtuple  # named at run time, from the description
        row_type = make_type(f"{view.title()}Row", self.names)
        self.read: Callable[[tuple[Any, ...]], Any] = row_type._make
        """A row selected with :attr:`select`, its columns readable by name."""

    def name(self, db: Database, generation: int) -> str:
        return db.table(f"cv_{self.view}_g{generation}")

    def create(self, run: Run, db: Database, generation: int, *, keyed: bool = True) -> None:
        """The table of a generation, unless it is there; ``keyed=False`` leaves out its
        keys and indexes (for a bulk load, then :meth:`add_keys`)."""
        parts = [c.ddl(db) for c in self.columns]
        if keyed:
            parts += self._constraints()
        run(f"CREATE TABLE IF NOT EXISTS {self.name(db, generation)} ({', '.join(parts)})")
        if keyed:
            self._create_indexes(run, db, generation)

    def add_missing_columns(self, run: Run, db: Database, generation: int) -> list[str]:
        """Add to a generation's table the columns and indexes described since it was made
        (each column with its default); returns the new columns' names. A table described
        since the generation was made is made, empty: its events are newer than the
        version that made the generation, so none of them has been projected (a rebuild
        fills it all the same)."""
        table = self.name(db, generation)
        there = run.columns(table)
        if not there:
            self.create(run, db, generation)
            return []
        missing = [c for c in self.columns if c.name not in there]
        for column in missing:
            if column.default is None and not column.null:
                raise ValueError(f"{self.view}: column {column.name} was added without a default")
            run(f"ALTER TABLE {table} ADD COLUMN {column.ddl(db)}")
        self._create_indexes(run, db, generation, missing_only=True)  # described since
        return [c.name for c in missing]

    def add_keys(self, run: Run, db: Database, generation: int) -> None:
        """Give a table made with ``keyed=False`` the keys and indexes it would have had."""
        constraints = ", ".join(f"ADD {c}" for c in self._constraints())
        run(f"ALTER TABLE {self.name(db, generation)} {constraints}")
        self._create_indexes(run, db, generation)

    def insert(self, table: str) -> str:
        """Insert a whole row (:attr:`row`); a row whose key is there already is left as
        it is."""
        return (
            f"INSERT INTO {table} ({self.select}) "
            f"VALUES ({', '.join('?' * len(self.names))}) "
            f"ON CONFLICT ({', '.join(self.key)}) DO NOTHING"
        )

    def add(self, table: str, *, select_from: str | None = None) -> str:
        """Add a row's counts (every column not in the key) to the row of its key, made
        with zeros if it is not there; the values in column order (:attr:`row`). With
        ``select_from`` ("table WHERE …"), the key's columns after the first are taken from
        that table's row, by name: the values are then the first key column and the
        counts, in column order, then the where's."""
        counts = [n for n in self.names if n not in self.key]
        if select_from is None:
            source = f"VALUES ({', '.join('?' * len(self.names))})"
        else:
            picked = (n if n in self.key[1:] else "?" for n in self.names)
            source = f"SELECT {', '.join(picked)} FROM {select_from}"
        sums = ", ".join(f"{n} = t.{n} + excluded.{n}" for n in counts)
        return (
            f"INSERT INTO {table} AS t ({self.select}) {source} "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {sums}"
        )

    def _constraints(self) -> list[str]:
        found = [f"PRIMARY KEY ({', '.join(self.key)})"]
        if self.unique:
            found.append(f"UNIQUE ({', '.join(self.unique)})")
        return found

    def _create_indexes(
        self, run: Run, db: Database, generation: int, *, missing_only: bool = False
    ) -> None:
        """The table's indexes; with ``missing_only``, only those not there, checked first:
        ``CREATE INDEX IF NOT EXISTS`` on PostgreSQL locks the table against writes until
        the transaction ends even when the index is there, and a start must not hold up
        the followers for indexes it already has."""
        for index in self.indexes:
            name = f"cv_{self.view}_g{generation}_{index.suffix}"
            if missing_only and exists(run, db, db.table(name), "index"):
                continue
            run(
                f"CREATE INDEX IF NOT EXISTS {name} "
                f"ON {self.name(db, generation)} ({', '.join(index.columns)})"
            )


def exists(run: Run, db: Database, name: str, kind: Literal["table", "index"]) -> bool:
    """Whether the table or index ``name`` (as :meth:`Database.table` writes it) is there."""
    if db.sqlite:
        return bool(run("SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?",
                        (kind, name)))
    [(found,)] = run("SELECT to_regclass(?) IS NOT NULL", (name,))
    return bool(found)


def _row_writer(view: str, columns: tuple[Column, ...]) -> Callable[..., tuple[Any, ...]]:
    """``row(*, column=value, …)`` -> the values in column order, as a function made for
    the table: the insert of a rebuild calls it for every event, and a generated function
    takes its keywords at the speed of any call (a loop over a dict would not)."""
    required = [c.name for c in columns if not c.null and c.default is None]
    optional = [
        f"{c.name}={c.default!r}" for c in columns if c.null or c.default is not None
    ]
    names = ", ".join(c.name for c in columns)
    source = f"def row(*, {', '.join([*required, *optional])}):\n    return ({names},)\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<{view} row>", "exec"), namespace)  # noqa: S102 - our own names
    row: Callable[..., tuple[Any, ...]] = namespace["row"]
    return row


RESIDENTS = Table(
    "residents",
    (
        Column("resident_id", "text"),
        Column("aggregate_id", "text"),
        Column("personal", "bytes", null=True),
        Column("erased", "integer", default=0),
    ),
    key=("resident_id",),
    unique=("aggregate_id",),
)

LIBRARY = Table(
    "library",
    (
        Column("document_id", "text"),
        Column("resident_id", "text"),
        Column("position", "bigint"),
        Column("doc_type", "text"),
        Column("personal", "bytes", null=True),
        Column("content_type", "text"),
        Column("size", "bigint"),
        Column("trust_level", "text"),
        Column("issuer", "text", null=True),
        Column("status", "text"),
        Column("expires_at", "text", null=True),
        Column("created_at", "text"),
        Column("replaces", "text", null=True),
        Column("superseded_by", "text", null=True),
        Column("reuse_count", "integer", default=0),
    ),
    key=("document_id",),
    indexes=(Index("resident", ("resident_id", "position")),),
)

CONSENTS = Table(
    "consents",
    (
        Column("consent_id", "text"),
        Column("resident_id", "text"),
        Column("position", "bigint"),
        Column("department", "text"),
        Column("doc_types", "text"),
        Column("purpose", "text"),
        Column("valid_from", "text"),
        Column("valid_until", "text"),
        Column("max_uses", "integer", null=True),
        Column("uses", "integer", default=0),
        Column("revoked_at", "text", null=True),
        Column("granted_at", "text"),
    ),
    key=("consent_id",),
    indexes=(
        Index("resident", ("resident_id", "position")),
        Index("department", ("department", "position")),
    ),
)

ACCESS = Table(
    "access",
    (
        Column("access_id", "text"),
        Column("position", "bigint"),
        Column("resident_id", "text"),
        Column("officer", "text"),
        Column("department", "text"),
        Column("document_id", "text"),
        Column("doc_type", "text", null=True),
        Column("purpose", "text"),
        Column("consent_id", "text", null=True),
        Column("allowed", "integer"),
        Column("reason_codes", "text"),
        Column("personal", "bytes", null=True),
        Column("policy_version", "text"),
        Column("rule", "text", null=True),
        Column("request_id", "text"),
        Column("at", "text"),
        Column("action", "text", default="fetch"),  # fetch, or issue / verify (attestations)
        Column("undelivered", "text", null=True),  # why an allowed fetch's bytes never went out
    ),
    key=("access_id",),
    unique=("position",),
    indexes=(
        Index("resident", ("resident_id", "position")),
        Index("department", ("department", "position")),
    ),
)

APPLICATIONS = Table(
    "applications",
    (
        Column("application_id", "text"),
        Column("resident_id", "text"),
        Column("position", "bigint"),  # where it was accepted in the log
        Column("service_id", "text"),
        Column("department", "text"),  # the service's owner
        Column("unit", "text"),  # the window's unit; '' online
        Column("channel", "text"),
        Column("status", "text"),
        Column("accepted_at", "text"),
        Column("due_at", "text", null=True),  # null while paused and once closed
        Column("decided_at", "text", null=True),
        Column("on_time", "integer", null=True),
        Column("working_days", "integer", null=True),
        Column("materials_reused", "integer", default=0),
        Column("materials_brought", "integer", default=0),
        Column("rating", "integer", null=True),
    ),
    key=("application_id",),
    indexes=(
        Index("resident", ("resident_id", "position")),
        Index("due", ("status", "due_at")),
    ),
)

WORK_QUEUE = Table(
    "work_queue",
    (
        Column("department", "text"),
        Column("application_id", "text"),
        Column("due", "bigint"),  # its due moment in µs since 1970 (UTC); PAUSED while paused
        Column("position", "bigint"),  # the application's, which orders equal due moments
    ),
    key=("department", "application_id"),
    indexes=(
        Index("due", ("department", "due", "position")),
        # Each step's requeue deletes the application's rows whatever their department:
        # without this, every decision scanned the whole queue.
        Index("application", ("application_id",)),
    ),
)
"""Each department's applications waiting on it at their current step (while one is
returned to the resident, the departments that will review it again)."""

SERVICE_DAYS = Table(
    "service_days",
    (
        Column("day", "text"),  # the day in China Standard Time, YYYY-MM-DD
        Column("unit", "text"),  # the window's unit; '' online
        Column("department", "text"),
        Column("service_id", "text"),
        Column("accepted", "integer", default=0),
        Column("decided", "integer", default=0),
        Column("on_time", "integer", default=0),
        Column("working_days", "integer", default=0),
        Column("materials_reused", "integer", default=0),
        Column("materials_brought", "integer", default=0),
        Column("trips_saved", "integer", default=0),
        Column("rated", "integer", default=0),
        Column("rating_sum", "integer", default=0),
    ),
    key=("day", "unit", "department", "service_id"),
)
"""Supervision's sums (绩效监督) by day, unit, department and service, each event added to
the day it happened: accepted and materials on the day of acceptance, decisions on the day
of decision, supplies and ratings on theirs. Every column adds up, so a period's figures
are sums over its days."""

TABLES = (RESIDENTS, LIBRARY, CONSENTS, ACCESS, APPLICATIONS, WORK_QUEUE, SERVICE_DAYS)
