"""Ledger benchmark: growing the Merkle tree, verifying the log against it, inclusion proofs.

What is measured
----------------
For each backend — SQLite (the embedded default, in a temporary directory) and PostgreSQL
(DSN from ``CIVICVAULT_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``,
in a fresh ``bench_<random>`` schema given in the database URL and dropped at the end, even on
error; skipped with a note if unreachable) — the services are built by
``adapters.wiring.open_services`` with a generated master key and local blobs, every other
setting at its default: the ledger (:class:`projections.ledger.Ledger`) reads and writes in
batches of ``projections.ledger.BATCH`` (5,000) events and a checkpoint is due after 1,000
events, which it looks for once per batch, so one is signed every 5,000.

Fill, untimed (its time is printed): the realistic log of ``bench/projections.py`` — its
``Filler``, imported: residents register, file sealed documents and grant consents, and
departments fetch, judged as the app judges them — up to N events (default 1,000,000;
``--quick`` 20,000; ``--events``). Nothing follows the log in this process, so the ledger is
still empty when the fill ends. An untimed pass over the log then counts the notifications
and warms the page cache. Timed, each once, in this order:

a. Growth. Baseline: the raw read, ``application.recorder.select_notifications`` paging
   through every notification in the ledger's pages, and nothing else. Then
   ``ledger.catch_up()`` from the empty tree: the same pages read, each event's leaf hashed,
   every perfect node it completes written (about two rows per event), a checkpoint signed
   when due. events/s, and
   catch_up / raw read, for information (no goal); the CPU time of the thread beside its wall
   time shows whether Python's work or the database is the bound.
b. Verification: ``verify(events, ledger, public_keys("checkpoints"), page=ledger.batch)``,
   which reads the log again, recomputes every leaf hash and the tree, compares each with the
   stored leaf hash and each signed checkpoint's root. It must find the log intact. Two
   baselines, same run, same pages:

   (i) store read + hashlib: ``select_notifications`` in the same pages, and
       ``hashlib.sha256(leaf_of(notification)).digest()`` for each event — the same rows read
       and the same leaf bytes built and hashed once, nothing else. The goal is judged on
       this one: verify events/s >= 0.5 of it, on each backend;
   (ii) hashlib in memory, for information: the same leaf bytes, each page's built untimed,
       only ``hashlib.sha256(leaf).digest()`` over them timed (summed over the pages).

c. Inclusion proofs. ``ledger.inclusion(event, size)`` for R random events (default 1,000;
   ``--proofs``) in the tree of all N events; beside it, R random events among the first
   1,000 in the tree of 1,000 leaves (``tree_size=1000``), to show how the time grows with
   the size; and, as the baseline, one primary-key read of one node,
   ``SELECT hash FROM cv_ledger_nodes WHERE level = 0 AND idx = ?`` in its own read
   transaction through ``services.view_runner.db``, for R random leaves. The three are
   interleaved, one of each per round, so load from elsewhere on the machine falls on them
   alike, after 20 untimed rounds. p50, p99 and max in ms. Outside the timing every proof is
   checked: ``projections.merkle.verify_inclusion`` against ``ledger.root(tree_size)``, and its
   leaf hash against the hash of the event's stored bytes; failures must be 0. Goal: p99
   under 5 ms at 1,000,000 leaves (judged at the size filled, which the output names).

The exit status is 1 if verify finds the log altered or a proof fails, else 0 (a goal not
met is reported, not an error).

Run from the project root::

    .venv/bin/python -m bench.ledger                     # 1,000,000 events
    .venv/bin/python -m bench.ledger --quick             # 20,000 events: a smoke test
    .venv/bin/python -m bench.ledger --events 200000 --no-postgres
    CIVICVAULT_TEST_POSTGRES_DSN=postgresql://user:pw@host:5432/db .venv/bin/python -m bench.ledger
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from adapters.wiring import Services
from bench import stopping
from bench.backends import on_each_backend, postgres_services, sqlite_services
from bench.projections import (
    EVENTS_PER_RESIDENT,
    SEED,
    Fill,
    Filler,
    percentile,
    read_log,
    timed,
)
from bench.tables import print_table
from projections.ledger import NODES, InclusionProof, Ledger, Verdict, leaf_of, verify
from projections.merkle import leaf_hash, verify_inclusion

GOAL_VERIFY_RATIO = 0.5  # verify / (store read + hashlib.sha256), events/s
GOAL_PROOF_MS = 5.0  # inclusion proof p99 at the full size
PREFIX = 1000  # leaves in the small tree the proofs are compared with
WARMUP_ROUNDS = 20
T = TypeVar("T")


@dataclass
class Growth:
    notifications: int
    batch: int
    raw_seconds: float
    seconds: float
    cpu_seconds: float
    added: int
    node_rows: int
    checkpoints: int

    @property
    def raw_rate(self) -> float:
        return self.notifications / self.raw_seconds

    @property
    def rate(self) -> float:
        return self.added / self.seconds


@dataclass
class Verification:
    events: int
    leaf_bytes: int
    store_seconds: float  # baseline (i)
    memory_seconds: float  # baseline (ii)
    seconds: float
    cpu_seconds: float
    verdict: Verdict

    @property
    def store_rate(self) -> float:
        return self.events / self.store_seconds

    @property
    def memory_rate(self) -> float:
        return self.events / self.memory_seconds

    @property
    def rate(self) -> float:
        return self.verdict.events / self.seconds

    @property
    def ratio(self) -> float:
        return self.rate / self.store_rate


@dataclass
class Proofs:
    size: int
    prefix: int
    full: list[float] = field(default_factory=list)  # seconds per proof
    small: list[float] = field(default_factory=list)
    select: list[float] = field(default_factory=list)
    full_path: int = 0  # hashes in all the full-size proofs
    small_path: int = 0
    failures: int = 0

    def ms(self, which: list[float], q: float) -> float:
        return percentile(which, q) * 1000


# a. Growth


def measure_growth(services: Services) -> Growth:
    ledger = services.ledger
    notifications = read_log(services, ledger.batch)  # warm-up: counts, and warms the page cache
    raw = timed(lambda: read_log(services, ledger.batch))
    added = 0

    def grow() -> None:
        nonlocal added
        added = ledger.catch_up()

    cpu = time.thread_time()
    seconds = timed(grow)
    cpu = time.thread_time() - cpu
    with ledger.db.transaction(commit=False) as run:
        node_rows = int(run(f"SELECT COUNT(*) FROM {ledger.nodes_table}")[0][0])
    checkpoints = sum(1 for _ in ledger.checkpoints())
    return Growth(notifications, ledger.batch, raw, seconds, cpu, added, node_rows, checkpoints)


# b. Verification


def measure_verification(services: Services) -> Verification:
    ledger = services.ledger
    leaf_bytes = 0
    hashing = 0.0

    def hash_page(notifications: Any) -> None:
        for notification in notifications:
            hashlib.sha256(leaf_of(notification)).digest()

    def hash_in_memory(notifications: Any) -> None:
        nonlocal leaf_bytes, hashing
        leaves = [leaf_of(notification) for notification in notifications]
        leaf_bytes += sum(len(leaf) for leaf in leaves)
        start = time.perf_counter()
        for leaf in leaves:
            hashlib.sha256(leaf).digest()
        hashing += time.perf_counter() - start

    events = 0

    def store() -> None:
        nonlocal events
        events = read_log(services, ledger.batch, hash_page)

    store_seconds = timed(store)
    read_log(services, ledger.batch, hash_in_memory)
    keys = services.signing.public_keys("checkpoints")
    verdict: Verdict | None = None

    def check() -> None:
        nonlocal verdict
        verdict = verify(services.events, ledger, keys, page=ledger.batch)

    cpu = time.thread_time()
    seconds = timed(check)
    cpu = time.thread_time() - cpu
    assert verdict is not None
    return Verification(events, leaf_bytes, store_seconds, hashing, seconds, cpu, verdict)


# c. Inclusion proofs


def select_leaf(ledger: Ledger, index: int) -> bytes:
    """The baseline: one primary-key read of one stored node."""
    with ledger.db.transaction(commit=False) as run:
        rows = run(f"SELECT hash FROM {ledger.nodes_table} WHERE level = 0 AND idx = ?", (index,))
    return bytes(rows[0][0])


def clocked(call: Callable[..., T], *args: Any) -> tuple[T, float]:
    """call(*args) and the seconds it took."""
    start = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - start


def measure_proofs(services: Services, rounds: int) -> Proofs:
    ledger, events = services.ledger, services.events
    size = ledger.size()
    prefix = min(PREFIX, size)
    rng = random.Random(SEED)
    found = Proofs(size, prefix)
    proofs: list[tuple[int, InclusionProof]] = []
    for n in range(WARMUP_ROUNDS + rounds):
        event, small_event = rng.randint(1, size), rng.randint(1, prefix)
        index = rng.randrange(size)
        full, full_seconds = clocked(ledger.inclusion, event, size)
        small, small_seconds = clocked(ledger.inclusion, small_event, prefix)
        _, select_seconds = clocked(select_leaf, ledger, index)
        if n < WARMUP_ROUNDS:
            continue
        found.full.append(full_seconds)
        found.small.append(small_seconds)
        found.select.append(select_seconds)
        found.full_path += len(full.inclusion_path)
        found.small_path += len(small.inclusion_path)
        proofs += [(event, full), (small_event, small)]
    roots = {size: ledger.root(size), prefix: ledger.root(prefix)}
    for event, proof in proofs:
        [notification] = events.select_notifications(event, 1)
        if proof.leaf_hash != leaf_hash(leaf_of(notification)) or not verify_inclusion(
            proof.leaf_hash, proof.leaf_index, proof.tree_size, proof.inclusion_path,
            roots[proof.tree_size],
        ):
            found.failures += 1
    return found


# Per backend


@dataclass
class BackendResult:
    name: str
    notes: list[str]
    fill: Fill
    growth: Growth
    verification: Verification
    proofs: Proofs

    @property
    def verify_met(self) -> bool:
        return self.verification.verdict.intact and self.verification.ratio >= GOAL_VERIFY_RATIO

    @property
    def proofs_met(self) -> bool:
        return self.proofs.failures == 0 and self.proofs.ms(self.proofs.full, 0.99) < GOAL_PROOF_MS

    @property
    def sound(self) -> bool:
        """Whether the ledger checked out: the log intact and every proof good."""
        return self.verification.verdict.intact and self.proofs.failures == 0


@dataclass(frozen=True)
class Options:
    events: int
    residents: int
    proofs: int


def measure(services: Services, name: str, options: Options) -> BackendResult:
    services.policies.current_version()
    print(f"{name}: filling {options.events:,} events ...", flush=True)
    fill = Filler(services, options.residents, SEED).run(options.events)
    print(f"{name}: filled in {fill.seconds:.1f} s; growing the ledger ...", flush=True)
    growth = measure_growth(services)
    print(f"{name}: grown in {growth.seconds:.1f} s; verifying ...", flush=True)
    verification = measure_verification(services)
    print(f"{name}: verified in {verification.seconds:.1f} s; inclusion proofs ...", flush=True)
    proofs = measure_proofs(services, options.proofs)
    print(flush=True)
    notes = [
        f"blobs in {services.settings.blob_dir}",
        f"fill (untimed): {fill.events:,} events in {fill.seconds:.1f} s "
        f"({fill.events / fill.seconds:,.0f} events/s), {fill.residents:,} residents; "
        f"the log holds {growth.notifications:,} notifications (policy publication included)",
    ]
    return BackendResult(name, notes, fill, growth, verification, proofs)


def run_sqlite(root: Path, options: Options) -> BackendResult:
    with sqlite_services(root) as scratch:
        result = measure(scratch.services, "SQLite", options)
    result.notes.insert(0, scratch.where)
    return result


def run_postgres(dsn: str, server: str, root: Path, options: Options) -> BackendResult:
    with postgres_services(dsn, server, root) as scratch:
        result = measure(scratch.services, "PostgreSQL", options)
    result.notes.insert(0, scratch.where)
    return result


# Output


def report(result: BackendResult) -> None:
    g, v, p = result.growth, result.verification, result.proofs
    print(f"== {result.name} ==")
    for note in result.notes:
        print(f"  {note}")
    print()
    print_table(
        ["a. growth", "events", "seconds", "events/s"],
        [
            [f"raw read: select_notifications, pages of {g.batch:,} (baseline)",
             f"{g.notifications:,}", f"{g.raw_seconds:.2f}", f"{g.raw_rate:,.0f}"],
            ["ledger.catch_up() from empty", f"{g.added:,}", f"{g.seconds:.2f}", f"{g.rate:,.0f}"],
        ],
    )
    print(
        f"  catch_up's thread used {g.cpu_seconds:.2f} s of CPU in its {g.seconds:.2f} s "
        f"({g.cpu_seconds / g.seconds:.0%}); it wrote {g.node_rows:,} node rows "
        f"({g.node_rows / max(1, g.added):.2f} per event) and {g.checkpoints:,} signed checkpoints"
    )
    print()
    print_table(
        ["b. verification", "events", "seconds", "events/s"],
        [
            [f"(i) store read + hashlib.sha256(leaf), pages of {g.batch:,} (baseline)",
             f"{v.events:,}", f"{v.store_seconds:.2f}", f"{v.store_rate:,.0f}"],
            ["(ii) hashlib.sha256(leaf), leaves in memory (info)",
             f"{v.events:,}", f"{v.memory_seconds:.2f}", f"{v.memory_rate:,.0f}"],
            ["verify(events, ledger, public_keys)",
             f"{v.verdict.events:,}", f"{v.seconds:.2f}", f"{v.rate:,.0f}"],
        ],
    )
    verdict = v.verdict
    outcome = "intact" if verdict.intact else f"NOT intact: {verdict.problem}"
    print(
        f"  {v.leaf_bytes / 2**20:,.1f} MiB of leaf bytes ({v.leaf_bytes / max(1, v.events):,.0f} "
        f"per event); verify's thread used {v.cpu_seconds:.2f} s of CPU in its {v.seconds:.2f} s "
        f"({v.cpu_seconds / v.seconds:.0%}); verdict: {outcome}, {verdict.in_ledger:,} events "
        f"in the ledger, {verdict.checkpoints:,} checkpoints checked"
    )
    print()
    print_table(
        [f"c. inclusion proofs ({len(p.full):,} each)", "p50 ms", "p99 ms", "max ms", "hashes"],
        [
            [f"ledger.inclusion(event, {p.size:,})", f"{p.ms(p.full, 0.5):.2f}",
             f"{p.ms(p.full, 0.99):.2f}", f"{p.ms(p.full, 1.0):.2f}",
             f"{p.full_path / max(1, len(p.full)):.1f}"],
            [f"ledger.inclusion(event, {p.prefix:,})", f"{p.ms(p.small, 0.5):.2f}",
             f"{p.ms(p.small, 0.99):.2f}", f"{p.ms(p.small, 1.0):.2f}",
             f"{p.small_path / max(1, len(p.small)):.1f}"],
            [f"SELECT hash FROM {NODES} WHERE level = 0 AND idx = ? (baseline)",
             f"{p.ms(p.select, 0.5):.2f}", f"{p.ms(p.select, 0.99):.2f}",
             f"{p.ms(p.select, 1.0):.2f}", "-"],
        ],
    )
    print(
        f"  {len(p.full) + len(p.small):,} proofs checked with verify_inclusion against "
        f"ledger.root(size) and the hash of the event's stored bytes: {p.failures} failed"
    )
    print()
    print_table(
        ["goal", "measured", "baseline", "ratio", "goal", "met"],
        [
            ["catch_up vs raw read (events/s)", f"{g.rate:,.0f}", f"{g.raw_rate:,.0f}",
             f"{g.rate / g.raw_rate:.2f}", "(info)", "-"],
            ["verify vs (i) store read + sha256 (events/s)", f"{v.rate:,.0f}",
             f"{v.store_rate:,.0f}", f"{v.ratio:.2f}", f">= {GOAL_VERIFY_RATIO}",
             "yes" if result.verify_met else "NOT met"],
            ["verify vs (ii) sha256 in memory (events/s)", f"{v.rate:,.0f}",
             f"{v.memory_rate:,.0f}", f"{v.rate / v.memory_rate:.2f}", "(info)", "-"],
            [f"inclusion p99 at {p.size:,} leaves (ms)", f"{p.ms(p.full, 0.99):.2f}",
             f"{p.ms(p.select, 0.99):.2f}",
             f"{percentile(p.full, 0.99) / percentile(p.select, 0.99):.1f}",
             f"< {GOAL_PROOF_MS:g}", "yes" if result.proofs_met else "NOT met"],
            [f"inclusion p50 at {p.size:,} vs {p.prefix:,} leaves (ms)",
             f"{p.ms(p.full, 0.5):.2f}", f"{p.ms(p.small, 0.5):.2f}",
             f"{percentile(p.full, 0.5) / percentile(p.small, 0.5):.2f}", "(info)", "-"],
        ],
    )
    print(
        f"goal met ({result.name}): verification {'yes' if result.verify_met else 'NOT met'}, "
        f"inclusion proofs {'yes' if result.proofs_met else 'NOT met'}"
    )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run for a smoke test")
    parser.add_argument("--events", type=int, help="events in the store before the ledger grows")
    parser.add_argument("--residents", type=int, help="residents in the fill")
    parser.add_argument("--proofs", type=int, default=1000, help="inclusion proofs of each size")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    events: int = args.events or (20_000 if args.quick else 1_000_000)
    options = Options(
        events=events,
        residents=args.residents or max(20, events // EVENTS_PER_RESIDENT),
        proofs=args.proofs,
    )

    print(
        f"civicvault ledger benchmark — eventsourcing {version('eventsourcing')}, "
        f"{options.events:,} events from {options.residents:,} residents per backend, then the "
        f"ledger grown, verified and {options.proofs:,} inclusion proofs of each size"
        f"{' (quick)' if args.quick else ''}"
    )
    print()
    results = on_each_backend(
        lambda root: run_sqlite(root, options),
        lambda dsn, server, root: run_postgres(dsn, server, root, options),
        report,
        with_postgres=not args.no_postgres,
    )
    met = all(r.verify_met and r.proofs_met for r in results)
    backends = ", ".join(r.name for r in results)
    print(
        f"goal met: {'yes' if met else 'no'} (verify >= {GOAL_VERIFY_RATIO} of a store read + "
        f"hashlib.sha256 over the same leaf bytes; inclusion p99 < {GOAL_PROOF_MS:g} ms at "
        f"{options.events:,} events; on {backends})"
    )
    if not all(r.sound for r in results):
        print("ERROR: the ledger did not check out (see the verdict and the proof failures above)")
        return 1
    return 0


if __name__ == "__main__":
    stopping.run(main)
