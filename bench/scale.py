"""Scale benchmark: a department's fetch on a small store against one with a large history.

What is measured
----------------
Issue 18, item 4: the fetch rate with 1,000 and with 1,000,000 residents and a
10,000,000-event log stays within 20% — the cost of a fetch is flat in the size of history.

Two stores on one backend, open side by side in one process: PostgreSQL by default (DSN from
``CIVICVAULT_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``, each
store in a fresh ``bench_<random>`` schema dropped at the end, even on error), or SQLite
(``--backend sqlite``, each store a fresh file in a temporary directory). Each is built by
``adapters.wiring.open_services`` with a generated master key, local blobs and every other
setting at its default (so a 10,000-aggregate cache per process).

Fill, untimed for the rates (its time and events/s are printed, and its progress goes to
stderr every few seconds): the default policy is published, then ``bench.projections.Filler``
writes the seeded, realistic mix that bench describes — residents registered with a data key,
most with a credit grade; 1–3 documents each, sealed into real blobs of 1–4 KiB; 1–2 consents
each; then fetches judged and recorded on the aggregates in memory, 6% of them by a
department without consent, now and then a consent revoked or a document withdrawn — with
``store.save(*events)`` in transactions of about 5,000 events.

- SMALL, the baseline: ``--small-residents`` (default 1,000; ``--quick`` 200) residents and
  200 events per resident (1,000 → 200,000 events), as ``bench.projections`` fills by default.
- LARGE: ``--residents`` (default 1,000,000; ``--quick`` 5,000) residents and ``--events``
  (default 10,000,000; ``--quick`` 100,000) events. With 1,000,000 residents, onboarding alone
  is about 9 events each, so the log is mostly residents, documents and consents, and about a
  tenth fetches.

On PostgreSQL the events table of each store is then analyzed (``ANALYZE``), as autovacuum
would after a bulk load; the test server runs without it.

Targets, untimed: for each store, ``--fetches`` (default 2,000; ``--quick`` 200) fetches plus
a few warm-up ones, each of a resident drawn at random over all that store's residents: one of
the resident's consents that is live now, one of the resident's documents it covers, by the
consent's department for its purpose — kept only if ``vault.judgement.judge_fetch`` allows it
on the fill's final aggregates (document available and not expired, consent usable, the
policy's grade and trust level met); a resident with no such fetch is drawn again. At
1,000,000 residents nearly every fetch is of a resident no fetch of this run touched before,
so its resident, document and consents are loaded from the store (cache misses); at 1,000
they are soon all in the cache. That is the point: the cost of a fetch must not depend on how
much history lies around it.

Timed: ``fetches.fetch(officer=..., department=..., resident_id=..., document_id=...,
purpose=...)`` and draining ``.content`` (its length checked against the document's size) —
load, judge, commit the access event, the consent's use and the document's reuse, then unwrap
the key and read and decrypt the blob. After a few untimed warm-up fetches on each store, the
timed fetches run in blocks (``--block``, default 100; ``--quick`` 20) alternating between the
two stores, the store that goes first changing each time, so that drift in the machine or the
database hits both alike. fetches/s = fetches / the sum of their latencies; p50 and p99 of
those latencies. A denied fetch is not timed; it is counted and its reasons printed.

Printed: each store's fill (events, seconds, events/s, the mix), its log size, fetches/s,
p50/p99, the distinct residents fetched, the events a cold load of each target's resident,
document and consents replays; then LARGE / SMALL fetches/s against the goal ≥ 0.8.

Exit status 1 if any chosen fetch was denied (the targets are chosen to be allowed);
0 otherwise — a goal not met is printed, not an error.

How long it takes on the project's 2-core machine (2026-12-07), the fill being nearly all of
it: ``--quick`` about 35 s; ``--residents 20000 --events 200000`` 2 min; ``--residents 300000
--events 10000000`` 36 min (LARGE filled at 5,040 events/s, peak RSS 1.4 GiB); the default
36 min with ``TMPDIR=/dev/shm`` (the blobs on tmpfs, where a sync costs nothing; LARGE filled
at 5,501 events/s, peak RSS 4.3 GiB, 4.9 GiB of blobs). See ``docs/benchmarks.md``, "Fetch
cost against the size of history".

Run from the project root::

    .venv/bin/python -m bench.scale                     # 1,000 vs 1,000,000 residents, 10M events
    .venv/bin/python -m bench.scale --quick             # 200 vs 5,000 residents: a smoke test
    .venv/bin/python -m bench.scale --residents 20000 --events 200000
    .venv/bin/python -m bench.scale --backend sqlite --quick
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from uuid import UUID

from adapters.progress import Progress
from adapters.wiring import Core, Services
from bench import stopping
from bench.backends import Scratch, postgres_services, sqlite_services
from bench.fetch import Timing, drain
from bench.postgres import postgres_reachable, test_dsn
from bench.projections import EVENTS_PER_RESIDENT, SEED, Fill, Filler, Person, analyze_the_log
from bench.tables import print_table
from vault.consent import ConsentStatus
from vault.errors import AccessDenied
from vault.judgement import Decides, judge_fetch

GOAL_RATIO = 0.8  # LARGE fetches/s / SMALL fetches/s
WARMUP = 20  # untimed fetches per store before the timed ones
MAX_DRAWS = 100  # residents drawn per target before giving up on a store


# The fill


class ShownFiller(Filler):
    """The projections bench's fill, with its progress on stderr after every save.

    The fill keeps every resident's aggregates in memory, gigabytes of objects at 300,000
    residents, which a full garbage collection scans: several seconds, and when one fell
    inside a transaction PostgreSQL ended the connection (eventsourcing sets
    ``idle_in_transaction_session_timeout`` to 5 s). So what each save leaves is frozen out
    of the collections until the fill is over (:func:`thaw`)."""

    def __init__(self, vault: Core, residents: int, seed: int, progress: Progress) -> None:
        super().__init__(vault, residents, seed)
        self.progress = progress

    def save(self) -> None:
        super().save()
        gc.freeze()
        self.progress.update(self.fill.events)


def thaw() -> None:
    """Let the collector see again what the fill froze (the fill's aggregates, once
    dropped, go by their reference counts; this collects what cycles remain)."""
    gc.unfreeze()
    gc.collect()


@dataclass
class Target:
    """One fetch the policy allows, as the fill left the resident."""

    resident_id: str
    document_id: UUID
    size: int
    officer: str
    department: str
    purpose: str
    replayed: int  # events a cold load of the resident, the document and the consents reads


@dataclass
class Store:
    """One of the two stores: its fill, its targets and its timings."""

    name: str
    scratch: Scratch
    fill: Fill = field(default_factory=Fill)
    events_in_log: int = 0
    analyze_seconds: float = 0.0
    warmup: list[Target] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    draws: int = 0  # residents drawn to find the targets
    timing: Timing = field(default_factory=lambda: Timing("fetch"))
    denied: Counter[str] = field(default_factory=Counter)
    fetched: set[str] = field(default_factory=set)  # residents

    @property
    def services(self) -> Services:
        return self.scratch.services



def fill(store: Store, residents: int, events: int, seed: int) -> list[Person]:
    """Publish the policy, fill the store, analyze its log; returns the fill's residents."""
    services = store.services
    services.policies.current_version()
    print(f"{store.name}: filling {events:,} events from {residents:,} residents ...", flush=True)
    progress = Progress(
        f"{store.name} fill, events", stream=sys.stderr, total=events - services.events.head()
    )
    filler = ShownFiller(services, residents, seed, progress)
    store.fill = filler.run(events)
    progress.done()
    began = time.perf_counter()
    analyze_the_log(services)
    store.analyze_seconds = time.perf_counter() - began
    store.events_in_log = services.events.head()
    return filler.people


# Choosing the fetches


def allowed_fetches(person: Person, now: datetime, point: Decides) -> Iterator[Target]:
    """Every fetch of this resident's that a live consent covers and the policy allows."""
    resident = person.resident
    for consent in person.consents:
        if consent.status(now) is not ConsentStatus.ACTIVE:
            continue
        same = [
            c
            for c in person.consents
            if (c.department, c.purpose) == (consent.department, consent.purpose)
        ]
        for document in person.documents:
            if document.doc_type not in consent.doc_types:
                continue
            officer = f"{consent.department}-officer-bench"
            judged = judge_fetch(
                resident=resident,
                document=document,
                consents=same,
                officer=officer,
                department=consent.department,
                purpose=consent.purpose,
                point=point,
                now=now,
            )
            if judged.allowed:
                yield Target(
                    resident.resident_id,
                    document.id,
                    document.size,
                    officer,
                    consent.department,
                    consent.purpose,
                    resident.version + document.version + sum(c.version for c in same),
                )


def choose(store: Store, people: list[Person], count: int, rng: random.Random) -> list[Target]:
    """``count`` allowed fetches, each of a resident drawn at random over all of them."""
    now = datetime.now(UTC)
    point = store.services.policies.decision_point()
    chosen: list[Target] = []
    while len(chosen) < count:
        for _ in range(MAX_DRAWS):
            store.draws += 1
            options = list(allowed_fetches(rng.choice(people), now, point))
            if options:
                chosen.append(rng.choice(options))
                break
        else:
            raise RuntimeError(f"{store.name}: {MAX_DRAWS} residents in a row had no allowed fetch")
    return chosen


# The timed fetches


def fetch(store: Store, target: Target) -> float | None:
    """One fetch and its content drained: seconds taken, or None if it was denied."""
    began = time.perf_counter()
    try:
        fetched = store.services.fetches.fetch(
            officer=target.officer,
            department=target.department,
            resident_id=target.resident_id,
            document_id=target.document_id,
            purpose=target.purpose,
        )
        drained = drain(fetched.content)
    except AccessDenied as e:
        store.denied[", ".join(e.reason_codes)] += 1
        return None
    seconds = time.perf_counter() - began
    if drained != target.size:
        raise RuntimeError(f"{store.name}: a fetch returned {drained} bytes, not {target.size}")
    store.fetched.add(target.resident_id)
    return seconds


def measure(stores: list[Store], block: int) -> None:
    """Warm up each store, then their timed fetches in alternating blocks."""
    for store in stores:
        for target in store.warmup:
            fetch(store, target)
        store.fetched.clear()
    count = len(stores[0].targets)
    for n, start in enumerate(range(0, count, block)):
        for store in stores if n % 2 == 0 else stores[::-1]:
            for target in store.targets[start : start + block]:
                seconds = fetch(store, target)
                if seconds is not None:
                    store.timing.latencies.append(seconds)


# The run


@dataclass(frozen=True)
class Options:
    backend: str
    small_residents: int
    residents: int
    events: int
    fetches: int
    block: int


@contextmanager
def open_store(name: str, options: Options, root: Path, server: str) -> Iterator[Store]:
    root = root / name.lower()
    if options.backend == "sqlite":
        with sqlite_services(root) as scratch:
            yield Store(name, scratch)
    else:
        with postgres_services(test_dsn(), server, root) as scratch:
            yield Store(name, scratch)


def run(options: Options, server: str) -> tuple[Store, Store]:
    sizes = [
        ("SMALL", options.small_residents, options.small_residents * EVENTS_PER_RESIDENT),
        ("LARGE", options.residents, options.events),
    ]
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(prefix="civicvault-bench-") as tmp, ExitStack() as stack:
        stores = []
        for seed, (name, residents, events) in enumerate(sizes, start=SEED):
            store = stack.enter_context(open_store(name, options, Path(tmp), server))
            people = fill(store, residents, events, seed)
            print(
                f"{name}: filled in {store.fill.seconds:,.1f} s "
                f"({store.fill.events / store.fill.seconds:,.0f} events/s); choosing fetches ...",
                flush=True,
            )
            store.warmup = choose(store, people, WARMUP, rng)
            store.targets = choose(store, people, options.fetches, rng)
            del people  # the fill's aggregates: the fetches load their own
            thaw()
            stores.append(store)
        print(
            f"timing {options.fetches:,} fetches on each, in alternating blocks of "
            f"{options.block} ...",
            flush=True,
        )
        measure(stores, options.block)
        for store in stores:
            store.events_in_log = store.services.events.head()
        print()
        return stores[0], stores[1]


# Output


def report(small: Store, large: Store, options: Options) -> None:
    for store in (small, large):
        f = store.fill
        fetches = f.allowed + f.denied
        print(f"== {store.name} ==")
        print(f"  {store.scratch.where}; blobs in {store.services.settings.blob_dir}")
        print(
            f"  fill (untimed for the rates): {f.events:,} events in {f.seconds:,.1f} s "
            f"({f.events / f.seconds:,.0f} events/s) in saves of ~5,000; "
            + (f"ANALYZE {store.analyze_seconds:.1f} s; " if options.backend == "postgres" else "")
            + f"{f.residents:,} residents, {f.documents:,} documents "
            f"({f.blob_bytes / 2**20:,.1f} MiB of sealed blobs), {f.consents:,} consents; "
            f"{fetches:,} fetches in the fill ({f.allowed:,} allowed, {f.denied:,} denied)"
        )
        top = ", ".join(f"{name} {count / f.events:.0%}" for name, count in
                        f.by_type.most_common(4))
        print(f"  the mix: {top}, ...")
        replayed = sum(t.replayed for t in store.targets) / len(store.targets)
        print(
            f"  {len(store.targets):,} targets from {store.draws:,} residents drawn; "
            f"{len(store.fetched):,} distinct residents fetched; a cold load of a target's "
            f"resident, document and consents replays {replayed:.1f} events on average"
        )
        if store.denied:
            print(f"  DENIED: {dict(store.denied)}")
        print()
    print_table(
        ["store", "residents", "events in log", "fetches", "denied", "fetches/s", "p50 ms",
         "p99 ms"],
        [
            [
                store.name,
                f"{store.fill.residents:,}",
                f"{store.events_in_log:,}",
                f"{len(store.timing.latencies):,}",
                f"{sum(store.denied.values()):,}",
                f"{store.timing.rate:,.1f}",
                f"{store.timing.percentile_ms(0.5):.2f}",
                f"{store.timing.percentile_ms(0.99):.2f}",
            ]
            for store in (small, large)
        ],
    )
    print()
    ratio = large.timing.rate / small.timing.rate
    print_table(
        ["goal", "measured", "baseline", "ratio", "goal", "met"],
        [
            [
                "fetches/s, LARGE vs SMALL (same run)",
                f"{large.timing.rate:,.1f}",
                f"{small.timing.rate:,.1f}",
                f"{ratio:.2f}",
                f"≥ {GOAL_RATIO}",
                "yes" if ratio >= GOAL_RATIO else "no",
            ]
        ],
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"  peak RSS of this process: {usage.ru_maxrss / 2**20:,.2f} GiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--residents", type=int, help="residents in the LARGE store")
    parser.add_argument("--events", type=int, help="events in the LARGE store")
    parser.add_argument("--small-residents", type=int, help="residents in the SMALL store")
    parser.add_argument("--fetches", type=int, help="timed fetches per store")
    parser.add_argument("--block", type=int, help="fetches per alternating block")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    options = Options(
        backend=args.backend,
        small_residents=args.small_residents or (200 if quick else 1_000),
        residents=args.residents or (5_000 if quick else 1_000_000),
        events=args.events or (100_000 if quick else 10_000_000),
        fetches=args.fetches or (200 if quick else 2_000),
        block=args.block or (20 if quick else 100),
    )
    server = "SQLite"
    if options.backend == "postgres":
        reached = postgres_reachable(test_dsn())
        if reached is None:
            return 2
        server = reached
    small_events = options.small_residents * EVENTS_PER_RESIDENT
    print(
        f"civicvault scale benchmark — eventsourcing {version('eventsourcing')}, "
        f"{'PostgreSQL ' + server if options.backend == 'postgres' else 'SQLite'}: "
        f"SMALL {options.small_residents:,} residents / {small_events:,} events against "
        f"LARGE {options.residents:,} residents / {options.events:,} events"
        f"{' (quick)' if quick else ''}"
    )
    print(
        f"timed: {options.fetches:,} fetches.fetch + content drained per store, each of a "
        "random resident's document under a live consent the policy allows, in alternating "
        f"blocks of {options.block}; the fill is not timed for the rates"
    )
    print()
    small, large = run(options, server)
    report(small, large, options)
    denied = sum(sum(store.denied.values()) for store in (small, large))
    print(
        f"goal met: {'yes' if large.timing.rate / small.timing.rate >= GOAL_RATIO else 'no'} "
        f"(LARGE / SMALL fetches/s >= {GOAL_RATIO}); denied: {denied}"
    )
    return 1 if denied else 0


if __name__ == "__main__":
    stopping.run(main)
