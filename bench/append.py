"""Event-append benchmark: events/s through the vault vs raw INSERTs on the same database.

What is measured
----------------
For each backend — SQLite (the embedded default, in a temporary directory) and PostgreSQL
(DSN from ``CIVICVAULT_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``,
in a fresh ``bench_<random>`` schema that is dropped at the end; skipped if unreachable) —
a :class:`vault.app.Vault` is built by ``adapters.wiring.open_services`` and residents are
registered (untimed). Then:

a. single-event appends: each resident is loaded and given one pending ``GradeRecorded``
   event before the clock starts; only ``vault.save(resident)`` is timed (mapper, insert,
   commit). A second row times the whole domain command
   ``vault.record_grades([GradeUpdate(...)])`` per resident (read + decide + append).
b. batched appends: ``vault.save(*residents)`` with 100 residents holding one pending event
   each; only the save is timed.
c. baseline, same run, same database, same durability: raw INSERTs of rows the size of the
   app's stored ``GradeRecorded`` events (average ``length(state)`` read back from the app's
   events table after an untimed warm-up: ``stored_events`` on SQLite,
   ``<schema>.vault_events`` on PostgreSQL) into a table shaped like the event table — one
   autocommit INSERT per row (one round trip, durable on return), and 100-row transactions.
   SQLite: stdlib ``sqlite3`` on a separate file in the same directory, WAL, and the
   ``synchronous`` level that eventsourcing's own connection reports (printed). PostgreSQL:
   psycopg in the same schema, with the app connection's ``synchronous_commit`` (printed).

The app and raw loops run interleaved in blocks (rotating which goes first), so drift in
fsync latency over the run hits both sides alike. Events/s, per-call latency and the ratio
app / raw are printed. Goal: single-event appends reach >= 0.5 of raw single-row inserts
(the full-command and batched ratios are shown for information).

Run from the project root::

    .venv/bin/python -m bench.append            # 2000 single appends, 100 batches of 100
    .venv/bin/python -m bench.append --quick    # 200 and 10: a smoke test, well under 30 s
    CIVICVAULT_TEST_POSTGRES_DSN=postgresql://user:pw@host:5432/db .venv/bin/python -m bench.append
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr

from adapters.settings import Settings
from adapters.wiring import Services, open_services
from bench.backends import on_each_backend
from bench.postgres import drop_schema, redact, with_schema
from bench.tables import print_table
from keys.master import MasterKey
from policy.scales import Grade
from vault.app import Vault
from vault.inputs import GradeUpdate
from vault.resident import Resident

if TYPE_CHECKING:
    import psycopg

BATCH = 100
BLOCK = 100  # single-event calls per interleaved block
GOAL_RATIO = 0.5
WARMUP = 20
SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
Row = tuple[Any, int, str, bytes]


@dataclass
class Timing:
    """Per-call latencies of one measured loop and the events each call appended."""

    label: str
    events_per_call: int
    latencies: list[float] = field(default_factory=list)

    def run(self, calls: Sequence[Callable[[], object]]) -> None:
        for call in calls:
            start = time.perf_counter()
            call()
            self.latencies.append(time.perf_counter() - start)

    @property
    def events(self) -> int:
        return self.events_per_call * len(self.latencies)

    @property
    def seconds(self) -> float:
        return sum(self.latencies)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Measured:
    app_single: Timing
    app_command: Timing
    app_batch: Timing
    raw_single: Timing
    raw_batch: Timing
    state_bytes: int  # average GradeRecorded state after the warm-up: the raw row size
    final_state_bytes: int  # the same average over every GradeRecorded event of the run


@dataclass
class BackendResult:
    name: str
    notes: list[str]
    measured: Measured

    @property
    def single_ratio(self) -> float:
        return self.measured.app_single.rate / self.measured.raw_single.rate

    @property
    def goal_met(self) -> bool:
        return self.single_ratio >= GOAL_RATIO


class RawStore(Protocol):
    """A hand-written event table: the baseline's INSERTs."""

    def insert(self, rows: Sequence[Row]) -> None: ...

    def close(self) -> None: ...


@dataclass
class Target:
    """One backend: the running vault, the raw table beside it, and how to read event sizes."""

    vault: Vault
    raw: RawStore
    event_shape: Callable[[], tuple[str, int]]  # (GradeRecorded topic, average state bytes)
    make_id: Callable[[], Any]


# The measurement, shared by both backends


def register(vault: Vault, count: int) -> list[str]:
    rids = [f"bench-{i:06d}" for i in range(count)]
    for rid in rids:
        vault.register_resident(rid)
    return rids


def with_pending_grade(residents: Sequence[Resident], seq: Iterator[int]) -> None:
    now = datetime.now(UTC)
    for resident in residents:
        resident.record_grade(Grade.A, next(seq), now)


def raw_rows(target: Target, topic: str, state_bytes: int, count: int) -> list[Row]:
    return [(target.make_id(), 1, topic, os.urandom(state_bytes)) for _ in range(count)]


def measure(target: Target, n_single: int, n_batches: int) -> Measured:
    vault = target.vault
    seq = itertools.count(1)
    rids = register(vault, max(n_single, BATCH))

    warm = [vault.resident(rid) for rid in rids[:WARMUP]]
    with_pending_grade(warm, seq)
    for resident in warm:
        vault.save(resident)
    topic, state_bytes = target.event_shape()
    for row in raw_rows(target, topic, state_bytes, WARMUP):
        target.raw.insert([row])

    app_single = Timing("app: vault.save(resident), 1 event", 1)
    app_command = Timing("app: vault.record_grades([1 update])", 1)
    raw_single = Timing("raw: autocommit INSERT per row", 1)
    residents = [vault.resident(rid) for rid in rids[:n_single]]
    with_pending_grade(residents, seq)
    now = datetime.now(UTC)
    # In each block the app's saves and the raw inserts take turns going first; then come the
    # commands on the same residents, which read them afresh and append the next event.
    saves = [partial(vault.save, r) for r in residents]
    commands = [
        partial(vault.record_grades, [GradeUpdate(rid, Grade.B, now, next(seq))])
        for rid in rids[:n_single]
    ]
    singles = [
        partial(target.raw.insert, [row]) for row in raw_rows(target, topic, state_bytes, n_single)
    ]
    for n, start in enumerate(range(0, n_single, BLOCK)):
        block = slice(start, start + BLOCK)
        pair: list[tuple[Timing, Sequence[Callable[[], object]]]] = [
            (app_single, saves[block]),
            (raw_single, singles[block]),
        ]
        for timing, calls in pair if n % 2 == 0 else pair[::-1]:
            timing.run(calls)
        app_command.run(commands[block])

    app_batch = Timing(f"app: vault.save(*{BATCH} residents)", BATCH)
    raw_batch = Timing(f"raw: {BATCH}-row transactions", BATCH)
    everyone = [vault.resident(rid) for rid in rids]
    groups = [everyone[i : i + BATCH] for i in range(0, len(everyone) - BATCH + 1, BATCH)]
    for b in range(n_batches):
        group = groups[b % len(groups)]
        with_pending_grade(group, seq)
        app = partial(app_batch.run, [partial(vault.save, *group)])
        raw = partial(
            raw_batch.run, [partial(target.raw.insert, raw_rows(target, topic, state_bytes, BATCH))]
        )
        for step in (app, raw) if b % 2 == 0 else (raw, app):
            step()

    _, final_state_bytes = target.event_shape()
    return Measured(
        app_single, app_command, app_batch, raw_single, raw_batch, state_bytes, final_state_bytes
    )


def settings_for(data_dir: Path, database_url: str | None) -> Settings:
    return Settings(
        data_dir=data_dir,
        master_key=SecretStr(MasterKey.generate().to_base64()),
        database_url=database_url,
        s3_endpoint=None,
    )


def events_table(services: Services) -> str:
    recorder: Any = services.vault.recorder
    return str(recorder.events_table_name)


def size_note(table: str, measured: Measured) -> str:
    return (
        f"GradeRecorded state in {table}: {measured.state_bytes} B on average after the "
        f"warm-up ({measured.final_state_bytes} B over the whole run); "
        f"raw rows carry {measured.state_bytes} B"
    )


# SQLite


class RawSqlite:
    def __init__(self, path: Path, synchronous: int) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.journal_mode = str(self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        self.conn.execute(f"PRAGMA synchronous={int(synchronous)}")
        self.synchronous = int(self.conn.execute("PRAGMA synchronous").fetchone()[0])
        self.conn.execute(
            "CREATE TABLE raw_events (originator_id TEXT, originator_version INTEGER, "
            "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )

    def insert(self, rows: Sequence[Row]) -> None:
        if len(rows) == 1:  # one autocommit statement: the cheapest durable single insert
            self.conn.execute("INSERT INTO raw_events VALUES (?,?,?,?)", rows[0])
            return
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO raw_events VALUES (?,?,?,?)", rows)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def app_sqlite_pragmas(services: Services) -> tuple[str, int]:
    factory: Any = services.vault.factory
    with factory.datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = str(cursor.fetchone()[0])
        cursor.execute("PRAGMA synchronous")
        synchronous = int(cursor.fetchone()[0])
    return journal_mode, synchronous


def event_shape_sqlite(path: Path, table: str) -> tuple[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        topic, size = conn.execute(
            f"SELECT topic, AVG(LENGTH(state)) FROM {table} "
            "WHERE topic LIKE '%GradeRecorded' GROUP BY topic"
        ).fetchone()
    return str(topic), round(size)


def run_sqlite(root: Path, n_single: int, n_batches: int) -> BackendResult:
    data_dir = root / "sqlite"
    settings = settings_for(data_dir, None)
    services = open_services(settings)
    try:
        journal_mode, synchronous = app_sqlite_pragmas(services)
        table = events_table(services)
        raw = RawSqlite(data_dir / "raw.sqlite3", synchronous)
        try:
            target = Target(
                services.vault,
                raw,
                partial(event_shape_sqlite, settings.sqlite_path, table),
                lambda: uuid.uuid4().hex,
            )
            measured = measure(target, n_single, n_batches)
        finally:
            raw.close()
    finally:
        services.close()
    notes = [
        f"files in {data_dir} (sqlite {sqlite3.sqlite_version})",
        f"eventsourcing connection: journal_mode={journal_mode}, "
        f"synchronous={synchronous} ({SYNCHRONOUS.get(synchronous, '?')}); "
        f"raw connection: journal_mode={raw.journal_mode}, synchronous={raw.synchronous} "
        f"({SYNCHRONOUS.get(raw.synchronous, '?')})",
        size_note(table, measured),
    ]
    return BackendResult("SQLite", notes, measured)


# PostgreSQL


class RawPostgres:
    def __init__(self, dsn: str, schema: str, synchronous_commit: str) -> None:
        import psycopg
        from psycopg import sql

        self.conn: psycopg.Connection[Any] = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(
            sql.SQL("SET synchronous_commit = {}").format(sql.Literal(synchronous_commit))
        )
        row = self.conn.execute("SHOW synchronous_commit").fetchone()
        self.synchronous_commit = str(row[0]) if row else "?"
        table = sql.Identifier(schema, "raw_events")
        self.conn.execute(
            sql.SQL(
                "CREATE TABLE {} (originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
                " topic text, state bytea, notification_id bigserial,"
                " PRIMARY KEY (originator_id, originator_version))"
            ).format(table)
        )
        self.conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (notification_id ASC)").format(table))
        self.statement = sql.SQL(
            "INSERT INTO {} (originator_id, originator_version, topic, state)"
            " VALUES (%s, %s, %s, %s)"
        ).format(table)

    def insert(self, rows: Sequence[Row]) -> None:
        with self.conn.cursor() as cursor:
            if len(rows) == 1:  # one autocommit statement: one round trip, durable on return
                cursor.execute(self.statement, rows[0], prepare=True)
                return
            with self.conn.transaction():
                cursor.executemany(self.statement, rows)

    def close(self) -> None:
        self.conn.close()


def app_synchronous_commit(services: Services) -> str:
    factory: Any = services.vault.factory
    with factory.datastore.get_connection() as conn:
        row = conn.execute("SHOW synchronous_commit").fetchone()
    return str(row["synchronous_commit"])


def event_shape_postgres(dsn: str, schema: str, table: str) -> tuple[str, int]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT topic, AVG(LENGTH(state)) FROM {} "
                "WHERE topic LIKE '%%GradeRecorded' GROUP BY topic"
            ).format(sql.Identifier(schema, table))
        ).fetchone()
    if row is None:
        raise RuntimeError(f"no GradeRecorded events in {schema}.{table}")
    return str(row[0]), round(row[1])


def run_postgres(dsn: str, server: str, root: Path, n_single: int, n_batches: int) -> BackendResult:
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        settings = settings_for(root / "postgres", with_schema(dsn, schema))
        services = open_services(settings)
        try:
            synchronous_commit = app_synchronous_commit(services)
            table = events_table(services)
            raw = RawPostgres(dsn, schema, synchronous_commit)
            try:
                target = Target(
                    services.vault,
                    raw,
                    partial(event_shape_postgres, dsn, schema, table),
                    uuid.uuid4,
                )
                measured = measure(target, n_single, n_batches)
            finally:
                raw.close()
        finally:
            services.close()
    finally:
        drop_schema(dsn, schema)
    notes = [
        f"server {server} at {redact(dsn)}, schema {schema} (dropped at the end)",
        f"synchronous_commit: app connection {synchronous_commit}, "
        f"raw connection {raw.synchronous_commit}",
        size_note(table, measured),
    ]
    return BackendResult("PostgreSQL", notes, measured)


# Output


def report(result: BackendResult) -> None:
    m = result.measured
    print(f"== {result.name} ==")
    for note in result.notes:
        print(f"  {note}")
    print()
    print_table(
        ["measure", "events", "seconds", "events/s", "p50 ms/call", "p99 ms/call"],
        [
            [
                t.label,
                f"{t.events:,}",
                f"{t.seconds:.3f}",
                f"{t.rate:,.0f}",
                f"{t.percentile_ms(0.5):.3f}",
                f"{t.percentile_ms(0.99):.3f}",
            ]
            for t in (m.app_single, m.app_command, m.app_batch, m.raw_single, m.raw_batch)
        ],
    )
    print()
    comparisons = [
        ("single event (save)", m.app_single, m.raw_single, True),
        ("single event (full command)", m.app_command, m.raw_single, False),
        (f"{BATCH}-event batch (save)", m.app_batch, m.raw_batch, False),
    ]
    rows = []
    for label, app, raw, has_goal in comparisons:
        ratio = app.rate / raw.rate
        rows.append(
            [
                label,
                f"{app.rate:,.0f}",
                f"{raw.rate:,.0f}",
                f"{ratio:.2f}",
                f">= {GOAL_RATIO}" if has_goal else "(info)",
                ("yes" if ratio >= GOAL_RATIO else "no") if has_goal else "-",
            ]
        )
    print_table(["app vs raw", "app ev/s", "raw ev/s", "ratio", "goal", "met"], rows)
    print(f"goal met ({result.name}): {'yes' if result.goal_met else 'no'}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run for a smoke test")
    parser.add_argument("--single", type=int, help="single-event appends per backend")
    parser.add_argument("--batches", type=int, help=f"batches of {BATCH} events per backend")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    n_single: int = args.single or (200 if args.quick else 2000)
    n_batches: int = args.batches or (10 if args.quick else 100)

    print(
        f"civicvault append benchmark — eventsourcing {version('eventsourcing')}, "
        f"{n_single} single appends and {n_batches} batches of {BATCH} per backend, "
        f"app and raw interleaved in blocks{' (quick)' if args.quick else ''}"
    )
    print()
    results = on_each_backend(
        lambda root: run_sqlite(root, n_single, n_batches),
        lambda dsn, server, root: run_postgres(dsn, server, root, n_single, n_batches),
        report,
        with_postgres=not args.no_postgres,
    )
    met = all(r.goal_met for r in results)
    backends = ", ".join(r.name for r in results)
    print(
        f"goal met: {'yes' if met else 'no'} (single-event app/raw >= {GOAL_RATIO} on {backends})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
