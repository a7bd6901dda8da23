"""Event-append benchmark: events/s through the vault vs raw INSERTs on the same database.

What is measured
----------------
For each backend — SQLite (the embedded default, in a temporary directory) and PostgreSQL
(DSN from ``CIVICVAULT_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``,
in a fresh ``bench_<random>`` schema that is dropped at the end; skipped if unreachable) —
the services are built by ``adapters.wiring.open_services``. Set-up (untimed) registers
residents and grants each one consent (``consents.grant``: department ``civil-affairs``,
document type ``id-card``, purpose ``subsistence-allowance``, valid for a day, so no use in
the run meets an expired consent).

The goal event is ``Consent.Used``: it is the event the vault appends most, since every
allowed fetch appends one (an allowed ``fetches.fetch`` saves three events in one
transaction: ``AccessAttempt.Recorded``, ``Consent.Used`` and ``Document.Reused``), and it
carries no personal field. So:

a. single-event appends (the goal): before each timed call the consent is loaded afresh
   (``consents.consent(rid, consent_id)``, through the vault's aggregate cache as a fetch
   does) and given one pending ``Consent.Used`` event (``consent.use(...)``); only
   ``store.save(consent)`` is timed (mapper, insert, commit).
b. batched appends: 100 consents are loaded afresh and given one pending ``Consent.Used``
   each (untimed); only ``store.save(*consents)`` is timed.
c. the sealed path, for information (no goal): ``Resident.GradeRecorded`` carries a sealed
   personal field (the grade, sealed with the resident's data key), so its save includes a
   key-table read whenever that resident's key is not in the in-memory key cache (which
   lasts 2 s, so other processes notice a crypto-shredding quickly). One row times
   ``store.save(resident)`` with one pending ``GradeRecorded`` (the resident loaded afresh,
   untimed); another times the whole domain command
   ``residents.record_grades([GradeUpdate(...)])`` per resident (key prefetch + read +
   decide + append).
d. baseline, same run, same database, same durability: raw INSERTs of rows the size of the
   app's stored ``Consent.Used`` events (average ``length(state)`` of the events whose topic
   is ``vault.consent:Consent.Used``, read back from the app's events table after an untimed
   warm-up: ``stored_events`` on SQLite, ``<schema>.vault_events`` on PostgreSQL) into a
   table shaped like the event table — one autocommit INSERT per row (one round trip,
   durable on return), and 100-row transactions. The sealed-path rows are compared with the
   same raw single-row baseline (its rows have the ``Consent.Used`` size; the average
   ``GradeRecorded`` size is printed beside it). SQLite: stdlib ``sqlite3`` on a separate
   file in the same directory, WAL, and the ``synchronous`` level that eventsourcing's own
   connection reports (printed). PostgreSQL: psycopg in the same schema, with the app
   connection's ``synchronous_commit`` (printed).

The app and raw loops run interleaved in blocks (rotating which goes first), so drift in
fsync latency over the run hits both sides alike; each block's sealed-path calls follow.
At the end the events actually stored are counted against the calls made. Events/s,
per-call latency and the ratio app / raw are printed. Goal: single ``Consent.Used`` appends
reach >= 0.5 of raw single-row inserts (the batched and sealed-path ratios are shown for
information).

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
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from adapters.wiring import Core, Services
from bench import stopping
from bench.backends import on_each_backend, postgres_services, sqlite_services
from bench.tables import print_table
from policy.scales import Grade
from vault.consent import Consent
from vault.inputs import ConsentRequest, GradeUpdate
from vault.resident import Resident

if TYPE_CHECKING:
    import psycopg

BATCH = 100
BLOCK = 100  # single-event calls per interleaved block
GOAL_RATIO = 0.5
WARMUP = 20
SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
DEPARTMENT = "civil-affairs"
DOC_TYPE = "id-card"
PURPOSE = "subsistence-allowance"
CONSENT_VALIDITY = timedelta(days=1)  # far beyond any run: no use meets an expired consent
USED = "Consent.Used"  # the goal event (topic vault.consent:Consent.Used)
GRADED = "GradeRecorded"  # the sealed event of the information rows
Row = tuple[Any, int, str, bytes]
EventShape = tuple[str, int, int]  # topic, average state bytes, number of events
Step = Callable[[], Callable[[], object]]
"""Untimed preparation (load an aggregate, give it a pending event) returning the call to time."""


@dataclass
class Timing:
    """Per-call latencies of one measured loop and the events each call appended."""

    label: str
    events_per_call: int
    latencies: list[float] = field(default_factory=list)

    def run(self, steps: Sequence[Step]) -> None:
        for step in steps:
            call = step()  # untimed
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
    app_single: Timing  # store.save(consent), one Consent.Used
    app_batch: Timing  # store.save(*consents), one Consent.Used each
    app_sealed_save: Timing  # store.save(resident), one GradeRecorded
    app_sealed_command: Timing  # residents.record_grades([one update])
    raw_single: Timing
    raw_batch: Timing
    topic: str  # the Consent.Used topic as stored
    state_bytes: int  # average Consent.Used state after the warm-up: the raw row size
    final_state_bytes: int  # the same average over every Consent.Used event of the run
    sealed_state_bytes: int  # average GradeRecorded state over the run


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

    vault: Core
    raw: RawStore
    event_shape: Callable[[str], EventShape]  # by topic suffix
    make_id: Callable[[], Any]


# The measurement, shared by both backends


Subject = tuple[str, uuid.UUID]  # a resident id and the consent they granted


def set_up(vault: Core, count: int) -> list[Subject]:
    """Register residents and grant each one consent to civil-affairs (untimed)."""
    request = ConsentRequest(
        department=DEPARTMENT,
        doc_types=(DOC_TYPE,),
        purpose=PURPOSE,
        valid_until=datetime.now(UTC) + CONSENT_VALIDITY,
    )
    subjects = []
    for i in range(count):
        rid = f"bench-{i:06d}"
        vault.residents.register(rid)
        subjects.append((rid, vault.consents.grant(rid, request).consent.id))
    return subjects


def used_consent(vault: Core, subject: Subject) -> Consent:
    """The consent loaded afresh, holding one pending Consent.Used event."""
    rid, consent_id = subject
    consent = vault.consents.consent(rid, consent_id)
    consent.use(
        department=DEPARTMENT,
        doc_type=DOC_TYPE,
        purpose=PURPOSE,
        document_id=uuid.uuid4(),
        request_id=uuid.uuid4().hex,
        now=datetime.now(UTC),
    )
    return consent


def save_used(vault: Core, subjects: Sequence[Subject]) -> Step:
    """Untimed: load each consent and use it; timed: one ``store.save`` of them all."""
    return lambda: partial(vault.store.save, *[used_consent(vault, s) for s in subjects])


def save_graded(vault: Core, rid: str, seq: Iterator[int]) -> Step:
    """Untimed: load the resident and record a grade; timed: ``store.save(resident)``."""

    def prepare() -> Callable[[], object]:
        resident: Resident = vault.residents.resident(rid)
        if not resident.record_grade(Grade.A, next(seq), datetime.now(UTC), vault.clock.now()):
            raise RuntimeError(f"grade for {rid} was stale")
        return partial(vault.store.save, resident)

    return prepare


def grade_command(vault: Core, rid: str, seq: Iterator[int]) -> Step:
    """Timed: the whole command, read + decide + append (sequence drawn when it runs)."""
    return lambda: partial(
        vault.residents.record_grades, [GradeUpdate(rid, Grade.B, datetime.now(UTC), next(seq))]
    )


def ready(call: Callable[[], object]) -> Step:
    return lambda: call


def raw_steps(
    target: Target, topic: str, state_bytes: int, count: int, per_call: int
) -> list[Step]:
    return [
        ready(
            partial(
                target.raw.insert,
                [(target.make_id(), 1, topic, os.urandom(state_bytes)) for _ in range(per_call)],
            )
        )
        for _ in range(count)
    ]


def measure(target: Target, n_single: int, n_batches: int) -> Measured:
    vault = target.vault
    seq = itertools.count(1)
    subjects = set_up(vault, max(n_single, BATCH))

    warm_up = [save_used(vault, [s]) for s in subjects[:WARMUP]]
    warm_up += [save_graded(vault, rid, seq) for rid, _ in subjects[:WARMUP]]
    for step in warm_up:
        step()()
    topic, state_bytes, _ = target.event_shape(USED)
    for step in raw_steps(target, topic, state_bytes, WARMUP, 1):
        step()()

    app_single = Timing("app: store.save(consent), 1 Consent.Used", 1)
    raw_single = Timing("raw: autocommit INSERT per row", 1)
    app_sealed_save = Timing(f"app: store.save(resident), 1 sealed {GRADED}", 1)
    app_sealed_command = Timing("app: residents.record_grades([1 update])", 1)
    # In each block the consent saves and the raw inserts take turns going first; then the
    # sealed path on the same residents: a save, then a command that appends the next grade.
    for n, start in enumerate(range(0, n_single, BLOCK)):
        block = subjects[start : min(start + BLOCK, n_single)]
        pair: list[tuple[Timing, Sequence[Step]]] = [
            (app_single, [save_used(vault, [s]) for s in block]),
            (raw_single, raw_steps(target, topic, state_bytes, len(block), 1)),
        ]
        for timing, steps in pair if n % 2 == 0 else pair[::-1]:
            timing.run(steps)
        app_sealed_save.run([save_graded(vault, rid, seq) for rid, _ in block])
        app_sealed_command.run([grade_command(vault, rid, seq) for rid, _ in block])

    app_batch = Timing(f"app: store.save(*{BATCH} consents), 1 Consent.Used each", BATCH)
    raw_batch = Timing(f"raw: {BATCH}-row transactions", BATCH)
    groups = [subjects[i : i + BATCH] for i in range(0, len(subjects) - BATCH + 1, BATCH)]
    for b in range(n_batches):
        app = partial(app_batch.run, [save_used(vault, groups[b % len(groups)])])
        raw = partial(raw_batch.run, raw_steps(target, topic, state_bytes, 1, BATCH))
        for run in (app, raw) if b % 2 == 0 else (raw, app):
            run()

    _, final_state_bytes, used = target.event_shape(USED)
    _, sealed_state_bytes, graded = target.event_shape(GRADED)
    expected = {USED: (used, WARMUP + app_single.events + app_batch.events)}
    expected[GRADED] = (
        graded,
        WARMUP + app_sealed_save.events + app_sealed_command.events,
    )
    for name, (stored, calls) in expected.items():
        if stored != calls:
            raise RuntimeError(f"{stored} {name} events stored, but {calls} appends were timed")
    return Measured(
        app_single,
        app_batch,
        app_sealed_save,
        app_sealed_command,
        raw_single,
        raw_batch,
        topic,
        state_bytes,
        final_state_bytes,
        sealed_state_bytes,
    )


def events_table(services: Services) -> str:
    recorder: Any = services.application.recorder
    return str(recorder.events_table_name)


def size_notes(table: str, measured: Measured, key_cache_seconds: float) -> list[str]:
    return [
        f"goal event {measured.topic} in {table}: {measured.state_bytes} B of state on "
        f"average after the warm-up ({measured.final_state_bytes} B over the whole run); "
        f"raw rows carry {measured.state_bytes} B",
        f"info rows: {GRADED} ({measured.sealed_state_bytes} B on average) carries a sealed "
        "personal field (the grade), so its save includes a key-table read when the "
        f"resident's key is not cached (the key cache lasts {key_cache_seconds:g} s); "
        "record_grades prefetches the key in one query per call",
        f"info rows are compared with the same raw single-row baseline "
        f"({measured.state_bytes}-B rows)",
    ]


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
    factory: Any = services.application.factory
    with factory.datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = str(cursor.fetchone()[0])
        cursor.execute("PRAGMA synchronous")
        synchronous = int(cursor.fetchone()[0])
    return journal_mode, synchronous


def event_shape_sqlite(path: Path, table: str, suffix: str) -> EventShape:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        row = conn.execute(
            f"SELECT topic, AVG(LENGTH(state)), COUNT(*) FROM {table} "
            "WHERE topic LIKE ? GROUP BY topic",
            (f"%{suffix}",),
        ).fetchone()
    if row is None:
        raise RuntimeError(f"no {suffix} events in {table}")
    return str(row[0]), round(row[1]), int(row[2])


def run_sqlite(root: Path, n_single: int, n_batches: int) -> BackendResult:
    with sqlite_services(root) as scratch:
        services, settings = scratch.services, scratch.settings
        journal_mode, synchronous = app_sqlite_pragmas(services)
        table = events_table(services)
        raw = RawSqlite(settings.data_dir / "raw.sqlite3", synchronous)
        try:
            target = Target(
                services,
                raw,
                partial(event_shape_sqlite, settings.sqlite_path, table),
                lambda: uuid.uuid4().hex,
            )
            measured = measure(target, n_single, n_batches)
        finally:
            raw.close()
    notes = [
        f"files in {settings.data_dir} (sqlite {sqlite3.sqlite_version})",
        f"eventsourcing connection: journal_mode={journal_mode}, "
        f"synchronous={synchronous} ({SYNCHRONOUS.get(synchronous, '?')}); "
        f"raw connection: journal_mode={raw.journal_mode}, synchronous={raw.synchronous} "
        f"({SYNCHRONOUS.get(raw.synchronous, '?')})",
        *size_notes(table, measured, settings.key_cache_seconds),
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
    factory: Any = services.application.factory
    with factory.datastore.get_connection() as conn:
        row = conn.execute("SHOW synchronous_commit").fetchone()
    return str(row["synchronous_commit"])


def event_shape_postgres(dsn: str, schema: str, table: str, suffix: str) -> EventShape:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT topic, AVG(LENGTH(state)), COUNT(*) FROM {} "
                "WHERE topic LIKE %s GROUP BY topic"
            ).format(sql.Identifier(schema, table)),
            (f"%{suffix}",),
        ).fetchone()
    if row is None:
        raise RuntimeError(f"no {suffix} events in {schema}.{table}")
    return str(row[0]), round(row[1]), int(row[2])


def run_postgres(dsn: str, server: str, root: Path, n_single: int, n_batches: int) -> BackendResult:
    with postgres_services(dsn, server, root) as scratch:
        services, schema = scratch.services, str(scratch.schema)
        synchronous_commit = app_synchronous_commit(services)
        table = events_table(services)
        raw = RawPostgres(dsn, schema, synchronous_commit)
        try:
            target = Target(
                services,
                raw,
                partial(event_shape_postgres, dsn, schema, table),
                uuid.uuid4,
            )
            measured = measure(target, n_single, n_batches)
        finally:
            raw.close()
    notes = [
        scratch.where,
        f"synchronous_commit: app connection {synchronous_commit}, "
        f"raw connection {raw.synchronous_commit}",
        *size_notes(table, measured, scratch.settings.key_cache_seconds),
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
            for t in (
                m.app_single,
                m.app_batch,
                m.raw_single,
                m.raw_batch,
                m.app_sealed_save,
                m.app_sealed_command,
            )
        ],
    )
    print()
    comparisons = [
        ("single event (save)", m.app_single, m.raw_single, True),
        (f"{BATCH}-event batch (save)", m.app_batch, m.raw_batch, False),
        (f"sealed {GRADED} (save)", m.app_sealed_save, m.raw_single, False),
        (f"sealed {GRADED} (full command)", m.app_sealed_command, m.raw_single, False),
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
    stopping.run(main)
