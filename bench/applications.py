"""Applications benchmark: a year of applications vs bare fetches; then figures and a queue on it.

A district's year accepted, reviewed and decided in process, beside as many bare fetches; then,
on that history, supervision figures for the city and a department's queue page.

What is measured
----------------
For each backend — SQLite (the embedded default, in a temporary directory) and PostgreSQL
(DSN from ``CIVICVAULT_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``,
in a fresh ``bench_<random>`` schema given in the database URL and dropped at the end, even on
error; skipped with a note if unreachable) — the services are built by
``adapters.wiring.open_services`` with a generated master key, local blobs and a
:class:`adapters.demo_city.DemoClock`, every other setting at its default (the aggregate
cache holds 10,000). The year is the 365 days before the run started: the clock is wound to
its first moment for the seed and forward through it, so acceptance and decision times,
due dates and supervision's daily tallies cover ~365 China days on the working-day calendar.

Seed, untimed (its time is printed): R residents (``--residents``, default N / 20, so each
applies about 20 times in the year). Each submits an ``id-card``, a ``household-register``,
an ``income-proof`` and a ``disability-cert`` (1 KiB each, saying what forms are filled from),
the certificate verified by ``disabled-persons`` (trust B, as disability-subsidy needs);
each grants ``civil-affairs`` a consent to read the ``id-card`` for ``elderly-card`` for the
whole year (for the baseline); all are graded A (reuse applies to every service); then
``view_runner.catch_up()``, so that the library read model names the candidates. With
``--workers W`` (below), W residents are seeded side by side.

The year, timed: N applications (``--applications``, default 600,000; ``--quick`` 300), made
**online** (no window, no authorization code), one every 365 days / N, by the residents in
turn. The mix (seeded): 3 in 4 ``disability-subsidy`` (4 materials: id-card, disability-cert
at B, household-register, income-proof; 2 steps: 残联 ``disabled-persons`` then 民政局
``civil-affairs``), 1 in 8 ``subsistence-allowance`` and 1 in 8 ``temporary-assistance`` (3
materials each — the catalogue has no service with more than 4; 1 step, ``civil-affairs``):
3.75 materials and 1.75 decisions per application on average, every material taken from
the library. Each step is approved by its department (``applications.decide(...,
decision="approve")``) 0.5–8 days (uniform, seeded) after the one before it, on the clock,
so decisions interleave with later acceptances (at full size, most find their application
gone from the aggregate cache); the last approval issues the service's document into the
resident's library. One application in 10 is left open at its last step (in
``civil-affairs``'s queue, its earlier steps approved), and those whose next decision would
fall after the year's end stay open too. **applications/s = applications accepted / the
wall time of the application blocks** (their acceptances and every decision that fell due
among them; the untimed following below left out). Timed per call besides: ``apply``, each
``decide``, and per application decided in full its ``apply`` plus all its decisions, with
their mean, p50 and p99; the mean of the first and the last tenth of the calls shows how a
call's time changes as the history grows.

Workers: with ``--workers W`` (default 1) the year's calls run on W threads side by side,
as the HTTP server's thread pool runs requests. The main thread keeps the year's order: it
winds the clock to each call's moment and hands the call to a free worker, never two at
once for one resident (their calls would only contend for the resident's aggregates); a
decision that falls due while the step before it is still running goes as soon as that
step ends. Each application's service, whether it is left open and its steps' delays are
drawn in the year's order, so the schedule is the same for any W. The baseline's fetches
go to the same W threads (the fetch service's batch thread then judges and records up to W
in one transaction). With one worker every call runs in turn on the main thread. With
more, a call's time includes waiting for the interpreter lock and for the others' round
trips: per-call times say how long a caller waited, the rates what the process did.

Baseline, the same run, the same services: N bare fetches — ``fetches.fetch`` by
``civil-affairs`` of a resident's 1 KiB ``id-card`` for ``elderly-card`` under the consent
granted at the seed, the content drained — the residents in turn. One fetch per application
(not one per material): an application here reads none of its materials, so the ratio
applications/s ÷ fetches/s (fetches/s = fetches / the wall time of the fetch blocks) says
how many fetches' worth of work one application (accepted, reviewed, decided) is.
Applications and fetches run interleaved in blocks of B (``--block``, default 1,000; 50 with
``--quick``), rotating which goes first, so both see the history grow alike and drift in the
machine hits both alike. Every 100 applications
(``--follow-every``; 10 with ``--quick``), untimed (the time is printed),
``view_runner.catch_up()`` brings the read models up to date, as the follower keeps them in
production (the HTTP route even waits for them before accepting): ``apply`` finds the
library's documents and the resident's ten newest applications (which its form is also
filled from) in them. ``--no-follow`` skips that: the read models then catch up on the whole
year at the end, and forms are filled from the documents only. On PostgreSQL, after each
block, untimed (the time is printed), the bench does what autovacuum at its default settings
would do by then (``bench.postgres.autovacuum``: VACUUM a table with more dead rows than 50 +
20% of its rows, ANALYZE one with more changed rows than 50 + 10%): the test server runs
without autovacuum, and without statistics the planner took the point read of a resident's
four documents for a large one, and ran it as a parallel scan with JIT compilation, 100 ms
instead of 0.1 ms, so that by 100,000 applications an acceptance took 50 ms instead of 5.

With the history loaded: ``view_runner.catch_up()`` (timed, printed); on PostgreSQL,
``ANALYZE`` of the views' tables and the events table, as autovacuum would (the test server
runs without it). Then, timed per call, no baseline in the run (there is none to compare
with; the goals are absolute):

a. supervision figures for the city: ``vault.supervision.figures(views, catalogue,
   unit="binjiang", by=..., since=<first day of the year>, until=<last>, now=<clock>)``, for
   ``by`` in unit, department, service in turn, 200 calls each (``--quick``: 20).
   Goal: p99 < 200 ms for each.
b. a department's queue page, as ``GET /v1/work/queue`` makes it, without HTTP:
   ``views.queue("civil-affairs", limit=21)``, then for each of the first 20
   ``applications.application(id)`` and ``applications.timing(...)``: 500 calls of the first
   page (``--quick``: 50). Goal: p99 < 50 ms. For information, as many pages walked through
   the queue with the cursor (from the start again at its end), so that each call loads
   other applications than the call before (at full size, ones the cache does not hold).

A check: the city's figures over the year must count N accepted and every application decided
in full; otherwise the exit status is 1. Progress (rate, time left) goes to stderr every few
seconds during the seed, the year and the measurements.

Duration on this 2-core machine: the default size on SQLite ran in 93 minutes on 2026-12-07
(the seed 5 minutes, the year 88, 8.8 ms of wall time an application with its fetch and the
read models' following; ``docs/benchmarks.md``, "Applications"). PostgreSQL took 102 minutes
for half the default size (300,000 from 15,000 residents: seed 5 minutes, the year 95, 19.0
ms an application) and goes slower per application at the full size: about 3.5-4 hours for
600,000 with one worker. Three workers made the timed year on PostgreSQL take 0.75 of the
time where the cache misses as at full size, and seed 30,000 residents in 7 minutes instead
of 12 (2026-12-08): about 3 hours for 600,000.
Those runs used the rates of their day (before 2026-12-08: applications decided in full over
the sum of their calls' times). Run from the project root::

    .venv/bin/python -m bench.applications --backend sqlite      # 600,000: about 1.5 hours
    .venv/bin/python -m bench.applications --backend postgres --workers 3  # 600,000: ~3 h
    .venv/bin/python -m bench.applications --applications 300000 --backend postgres  # 1.7 h
    .venv/bin/python -m bench.applications --quick               # 300: a smoke test, ~10 s
    .venv/bin/python -m bench.applications --applications 3000 --backend sqlite
"""

from __future__ import annotations

import argparse
import heapq
import io
import itertools
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar
from uuid import UUID

from adapters.demo_city import DemoClock
from adapters.progress import Progress
from adapters.wiring import Services, open_services
from bench import stopping
from bench.backends import scratch_settings
from bench.postgres import (
    autovacuum,
    drop_schema,
    postgres_reachable,
    redact,
    test_dsn,
    with_schema,
)
from bench.tables import print_table
from policy.scales import Grade
from projections.projector import china_day
from projections.queries import QueuedEntry
from projections.tables import SERVICE_DAYS, TABLES, WORK_QUEUE
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate
from vault.services.applications import Accepted
from vault.supervision import BY, By, Figures, figures

SEED = 16
YEAR = timedelta(days=365)
MIX = (("disability-subsidy", 6), ("subsistence-allowance", 1), ("temporary-assistance", 1))
"""Services and their weights: 3/4, 1/8, 1/8."""
LEFT_OPEN = 0.10
"""The share of applications left open at their last step."""
DELAY_DAYS = (0.5, 8.0)
"""A step is decided this many days (uniform) after the event before it."""
DOCUMENT_BYTES = 1024
SAYS = {
    "household-register": {"address": "滨江市江滨路8号"},
    "income-proof": {"monthly_income": "1800"},
    "disability-cert": {"category": "肢体", "grade": "二级"},
}
CITY = "binjiang"
DEPARTMENT = "civil-affairs"
BASELINE_PURPOSE = "elderly-card"
PAGE = 20
FIGURES_GOAL_MS = 200.0
QUEUE_GOAL_MS = 50.0
WARMUP = 5

T = TypeVar("T")
Maintain = Callable[[], tuple[int, int]]
"""Autovacuum's work on the store now (PostgreSQL): the tables vacuumed and analyzed."""


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """What the call returned, and the seconds it took."""
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


@dataclass
class Calls:
    """Per-call latencies of one kind of call."""

    label: str
    seconds: list[float] = field(default_factory=list)

    def timed(self, call: Callable[[], T]) -> tuple[T, float]:
        result, took = timed(call)
        self.seconds.append(took)
        return result, took

    @property
    def total(self) -> float:
        return sum(self.seconds)

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    def tenth_ms(self, which: int) -> float:
        """The mean of the first (0) or the last (-1) tenth of the calls, in ms."""
        tenth = max(1, len(self.seconds) // 10)
        chosen = self.seconds[:tenth] if which == 0 else self.seconds[-tenth:]
        return sum(chosen) / len(chosen) * 1000 if chosen else 0.0

    def row(self) -> list[str]:
        mean_ms = self.total / len(self.seconds) * 1000 if self.seconds else 0.0
        return [self.label, f"{len(self.seconds):,}", f"{mean_ms:.2f}",
                f"{self.percentile_ms(0.5):.2f}", f"{self.percentile_ms(0.99):.2f}"]


@dataclass
class Open:
    """An application not yet decided in full: the departments still to approve it, one
    per step (its last left out if it is left open), and its time so far."""

    application_id: UUID
    resident: str
    departments: list[str]
    left_open: bool
    seconds: float
    delays: random.Random


@dataclass
class Year:
    """The timed year: every call, and what became of the applications."""

    start: datetime
    end: datetime
    apply: Calls = field(default_factory=lambda: Calls("apply (online)"))
    step: Calls = field(default_factory=lambda: Calls("decide: approve a step"))
    last: Calls = field(default_factory=lambda: Calls("decide: last approval, issues"))
    fetch: Calls = field(default_factory=lambda: Calls("baseline: fetch + drain 1 KiB"))
    decided: Calls = field(default_factory=lambda: Calls("application: apply + decisions"))
    by_service: dict[str, int] = field(default_factory=dict)
    left_open: int = 0
    pending_at_end: int = 0
    seconds: float = 0.0  # wall time of the year, follow included
    applications_wall: float = 0.0  # the blocks of applications, less the following
    fetches_wall: float = 0.0  # the blocks of fetches
    follow_seconds: float = 0.0
    follow_events: int = 0
    maintenance_seconds: float = 0.0  # autovacuum's work, done between blocks (PostgreSQL)
    vacuums: int = 0
    analyzes: int = 0

    @property
    def applications_rate(self) -> float:
        """Applications accepted a second of the application blocks' wall time (each
        block's acceptances and every decision that fell due in it)."""
        return len(self.apply.seconds) / self.applications_wall if self.applications_wall else 0.0

    @property
    def fetches_rate(self) -> float:
        return len(self.fetch.seconds) / self.fetches_wall if self.fetches_wall else 0.0

    @property
    def ratio(self) -> float:
        return self.applications_rate / self.fetches_rate


@dataclass
class Loaded:
    """The history loaded, and the reads timed on it."""

    events: int
    catch_up_seconds: float
    catch_up_events: int
    analyze_seconds: float | None
    queue_length: int
    tally_days: int
    city: Figures
    by: dict[By, Calls]
    queue_first: Calls
    queue_walked: Calls


@dataclass
class BackendResult:
    name: str
    notes: list[str]
    applications: int
    workers: int
    year: Year
    loaded: Loaded

    @property
    def sound(self) -> bool:
        """Whether the city's figures count every application accepted and decided."""
        city = self.loaded.city
        return city.accepted == self.applications and city.decided == len(
            self.year.decided.seconds
        )

    @property
    def goal_met(self) -> bool:
        figures_met = all(c.percentile_ms(0.99) < FIGURES_GOAL_MS for c in self.loaded.by.values())
        return figures_met and self.loaded.queue_first.percentile_ms(0.99) < QUEUE_GOAL_MS


@dataclass(frozen=True)
class Options:
    applications: int
    residents: int
    block: int
    workers: int
    follow_every: int  # applications between catch-ups of the read models; 0: none
    figure_calls: int
    queue_calls: int


# Seed


def seed(
    services: Services, residents: list[str], until: datetime, name: str, workers: int = 1,
) -> dict[str, UUID]:
    """Each resident's four documents, the certificate verified, the baseline's consent and
    grade A, on ``workers`` threads; the read models caught up. Returns each resident's
    id-card."""
    progress = Progress(f"{name}: seed, residents", stream=sys.stderr, total=len(residents))

    def one(n: int, resident: str) -> UUID:
        rng = random.Random(SEED * 1_000_003 + n)
        card = {"name": f"居民{n}", "number": f"1101011960{n:08d}",
                "birth_date": "1960-01-01", "address": "滨江市和平里"}
        filed = {
            doc_type: services.documents.submit(
                resident, io.BytesIO(rng.randbytes(DOCUMENT_BYTES)),
                DocumentDetails(doc_type, doc_type, "application/pdf", attributes=says),
            ).value.id
            for doc_type, says in {"id-card": card, **SAYS}.items()
        }
        services.documents.verify("disabled-persons", "officer-he", filed["disability-cert"])
        services.consents.grant(resident, ConsentRequest(
            department=DEPARTMENT, doc_types=("id-card",), purpose=BASELINE_PURPOSE,
            valid_until=until,
        ))
        return filed["id-card"]

    numbered = range(len(residents))
    with ThreadPoolExecutor(workers, thread_name_prefix="bench-seed") as pool:
        made = map(one, numbered, residents) if workers == 1 else pool.map(
            one, numbered, residents)
        cards: dict[str, UUID] = {}
        for n, (resident, card) in enumerate(zip(residents, made, strict=True)):
            cards[resident] = card
            progress.update(n + 1)
    progress.done()
    services.residents.record_grades(
        [GradeUpdate(r, Grade.A, services.clock.now(), 1) for r in residents]
    )
    services.view_runner.catch_up()
    return cards


# The year


class Yearly:
    """Makes the year: acceptances in turn, each step decided when its day comes, and the
    baseline's fetches in blocks beside them, on ``options.workers`` threads.

    One thread (the caller's) keeps the year's order: it winds the clock to each call's
    moment and hands the call to a worker, at most ``workers`` at once and never two for
    the same resident (their calls would only contend for the resident's aggregates). With
    one worker every call runs on the caller's thread, one after another."""

    def __init__(
        self, services: Services, clock: DemoClock, cards: dict[str, UUID], year: Year,
        options: Options, maintain: Maintain | None = None,
    ) -> None:
        self.services = services
        self.clock = clock
        self.maintain = maintain
        self.residents = list(cards)
        self.cards = cards
        self.year = year
        self.options = options
        self.rng = random.Random(SEED)
        self.catalogue = services.catalogues.current()
        self.pending: list[tuple[datetime, int, Open]] = []
        self.order = itertools.count()
        self.made = 0
        self.fetched = 0
        self.moment = year.start
        self.pool = (ThreadPoolExecutor(options.workers, thread_name_prefix="bench-year")
                     if options.workers > 1 else None)
        self.in_flight: dict[Future[tuple[object, float]],
                             tuple[str, Callable[[object, float], None]]] = {}
        self.busy: set[str] = set()

    def run(self, name: str) -> None:
        total, block = self.options.applications, self.options.block
        progress = Progress(f"{name}: year, applications", stream=sys.stderr, total=total)
        began = time.perf_counter()
        try:
            for n, start in enumerate(range(0, total, block)):
                size = min(block, total - start)
                halves = [partial(self.accept, size, progress), partial(self.fetch, size)]
                for half in halves if n % 2 == 0 else halves[::-1]:
                    half()
                if self.maintain is not None:
                    (vacuums, analyzes), took = timed(self.maintain)
                    self.year.vacuums += vacuums
                    self.year.analyzes += analyzes
                    self.year.maintenance_seconds += took
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)
        progress.done()
        self.year.seconds = time.perf_counter() - began
        self.clock.wind_to(max(self.moment, self.year.end))
        self.year.pending_at_end = sum(1 for *_, a in self.pending if not a.left_open)

    def accept(self, count: int, progress: Progress) -> None:
        """A block of acceptances, with the decisions that fall due among them; its wall
        time, less the read models' following, is the applications' time."""
        apply = self.services.applications.apply
        began, followed = time.perf_counter(), 0.0
        for _ in range(count):
            at = self.year.start + YEAR * ((self.made + 0.5) / self.options.applications)
            self.decide_until(at)
            resident = self.residents[self.made % len(self.residents)]
            service_id = self.rng.choices([s for s, _ in MIX], [w for _, w in MIX])[0]
            left_open = self.rng.random() < LEFT_OPEN
            self.year.by_service[service_id] = self.year.by_service.get(service_id, 0) + 1
            departments = [
                d for step in self.catalogue.service(service_id).steps for d in step.departments
            ]
            if left_open:
                self.year.left_open += 1
                departments.pop()
            # Its steps' delays drawn from its own numbers, whatever order calls end in.
            delays = random.Random(SEED * 1_000_003 + self.made)
            self.start(at, resident, partial(apply, resident, service_id),
                       partial(self.accepted, at, resident, departments, left_open, delays))
            self.made += 1
            progress.update(self.made)
            if self.options.follow_every and self.made % self.options.follow_every == 0:
                self.drain()
                events, took = timed(self.services.view_runner.catch_up)
                self.year.follow_events += events
                self.year.follow_seconds += took
                followed += took
        self.drain()
        self.year.applications_wall += time.perf_counter() - began - followed

    def accepted(
        self, at: datetime, resident: str, departments: list[str], left_open: bool,
        delays: random.Random, accepted: object, took: float,
    ) -> None:
        assert isinstance(accepted, Accepted)
        self.year.apply.seconds.append(took)
        self.schedule(at, Open(accepted.application.id, resident, departments, left_open,
                               took, delays))

    def schedule(self, after: datetime, application: Open) -> None:
        """Its next decision, some days on (after the year's end, it never comes)."""
        if application.departments:
            moment = after + timedelta(days=application.delays.uniform(*DELAY_DAYS))
            heapq.heappush(self.pending, (moment, next(self.order), application))

    def decide_until(self, until: datetime) -> None:
        decide = self.services.applications.decide
        while self.pending and self.pending[0][0] <= until:
            moment, _, application = heapq.heappop(self.pending)
            department = application.departments.pop(0)
            last = not application.departments and not application.left_open
            self.start(moment, application.resident, partial(
                decide, application.application_id, department=department,
                officer=f"officer-{department}", decision="approve", reason="符合条件",
            ), partial(self.decided, moment, application, last))

    def decided(self, moment: datetime, application: Open, last: bool, _: object,
                took: float) -> None:
        (self.year.last if last else self.year.step).seconds.append(took)
        application.seconds += took
        if last:
            self.year.decided.seconds.append(application.seconds)
        else:
            self.schedule(moment, application)

    def start(self, moment: datetime, resident: str, call: Callable[[], object],
              then: Callable[[object, float], None]) -> None:
        """Run ``call`` at ``moment`` (or as soon after as the year has got to), on a
        worker once one is free and the resident has no call running; ``then`` gets what
        it returned and the seconds it took, on this thread."""
        while resident in self.busy or len(self.in_flight) >= self.options.workers:
            self.finish_one()
        self.moment = max(self.moment, moment)
        self.clock.wind_to(self.moment)
        if self.pool is None:
            then(*timed(call))
            return
        self.busy.add(resident)
        self.in_flight[self.pool.submit(timed, call)] = (resident, then)

    def finish_one(self) -> None:
        """Wait for a call to end and take in its outcome (a call that failed stops the
        bench with its error)."""
        done, _ = wait(self.in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            resident, then = self.in_flight.pop(future)
            self.busy.discard(resident)
            then(*future.result())

    def drain(self) -> None:
        while self.in_flight:
            self.finish_one()

    def fetch(self, count: int) -> None:
        """A block of the baseline's fetches, the residents in turn, on the workers."""
        residents = [self.residents[(self.fetched + n) % len(self.residents)]
                     for n in range(count)]
        self.fetched += count
        began = time.perf_counter()
        if self.pool is None:
            took = [timed(partial(self.fetch_one, r))[1] for r in residents]
        else:
            took = list(self.pool.map(lambda r: timed(partial(self.fetch_one, r))[1], residents))
        self.year.fetches_wall += time.perf_counter() - began
        self.year.fetch.seconds.extend(took)

    def fetch_one(self, resident: str) -> None:
        fetched = self.services.fetches.fetch(
            officer="officer-li", department=DEPARTMENT, resident_id=resident,
            document_id=self.cards[resident], purpose=BASELINE_PURPOSE,
        )
        if sum(len(chunk) for chunk in fetched.content) != DOCUMENT_BYTES:
            raise RuntimeError("a fetch returned the wrong number of bytes")


# On the loaded history


def analyze(services: Services) -> float | None:
    """On PostgreSQL, the views' and the log's statistics gathered, as autovacuum would
    after a load (the test server runs without it); its seconds, or None on SQLite."""
    db = services.view_runner.db
    if db.sqlite:
        return None
    generation = services.view_runner.generation()
    tables = [t.name(db, generation) for t in TABLES]
    tables.append(db.table(services.application.recorder.events_table_name))  # type: ignore[attr-defined]
    began = time.perf_counter()
    with db.transaction() as run:
        for table in tables:
            run(f"ANALYZE {table}")
    return time.perf_counter() - began


def count(services: Services, sql: str, params: tuple[str, ...] = ()) -> int:
    """One number from the serving generation's views ({queue} and {days} name tables)."""
    db = services.view_runner.db
    generation = services.view_runner.generation()
    statement = sql.format(queue=WORK_QUEUE.name(db, generation),
                           days=SERVICE_DAYS.name(db, generation))
    with db.transaction(commit=False) as run:
        return int(run(statement, params)[0][0])


def queue_page(services: Services, after: tuple[int, int] | None) -> list[QueuedEntry]:
    """A page of the department's queue as the HTTP route makes it: the entries, then each
    application from its events, with its timing."""
    apps = services.applications
    entries = services.views.queue(DEPARTMENT, limit=PAGE + 1, after=after)
    for entry in entries[:PAGE]:
        apps.timing(apps.application(entry.application.application_id))
    return entries


def measure_loaded(services: Services, year: Year, options: Options, name: str) -> Loaded:
    caught_up, catch_up_seconds = timed(services.view_runner.catch_up)
    analyze_seconds = analyze(services)
    catalogue = services.catalogues.current()
    since, until = date.fromisoformat(china_day(year.start)), date.fromisoformat(
        china_day(year.end))
    now = services.clock.now()

    def city(by: By) -> list[Figures]:
        return figures(services.views, catalogue, unit=CITY, by=by, since=since, until=until,
                       now=now)

    by = {b: Calls(f"figures, city, by {b}") for b in BY}
    for b in BY:
        for _ in range(WARMUP):
            city(b)
    progress = Progress(f"{name}: figures", stream=sys.stderr,
                        total=options.figure_calls * len(BY))
    for n in range(options.figure_calls * len(BY)):
        b = BY[n % len(BY)]
        by[b].timed(partial(city, b))
        progress.update(n + 1)
    progress.done()

    first = Calls(f"queue page: {DEPARTMENT}, first {PAGE}")
    walked = Calls(f"queue page: {DEPARTMENT}, walked (info)")
    for _ in range(WARMUP):
        queue_page(services, None)
    after: tuple[int, int] | None = None
    progress = Progress(f"{name}: queue pages", stream=sys.stderr, total=options.queue_calls * 2)
    for n in range(options.queue_calls):
        first.timed(partial(queue_page, services, None))
        entries, _ = walked.timed(partial(queue_page, services, after))
        after = (entries[PAGE - 1].due, entries[PAGE - 1].position) if len(entries) > PAGE else None
        progress.update(2 * n + 2)
    progress.done()
    return Loaded(
        events=services.events.head(),
        catch_up_seconds=catch_up_seconds,
        catch_up_events=caught_up,
        analyze_seconds=analyze_seconds,
        queue_length=count(services, "SELECT COUNT(*) FROM {queue} WHERE department = ?",
                           (DEPARTMENT,)),
        tally_days=count(services, "SELECT COUNT(DISTINCT day) FROM {days}"),
        city=city("unit")[0],
        by=by,
        queue_first=first,
        queue_walked=walked,
    )


# Per backend


def measure(services: Services, clock: DemoClock, name: str, options: Options,
            where: str, maintain: Maintain | None) -> BackendResult:
    end = datetime.now(UTC).replace(microsecond=0)
    year = Year(start=end - YEAR, end=end)
    clock.wind_to(year.start)
    services.policies.current_version()
    residents = [f"bench-resident-{n:06d}" for n in range(options.residents)]
    print(f"{name}: seeding {len(residents):,} residents ...", file=sys.stderr, flush=True)
    cards, seed_seconds = timed(
        partial(seed, services, residents, year.end + timedelta(days=30), name, options.workers)
    )
    seed_events = services.events.head()
    print(f"{name}: the year, {options.applications:,} applications ...", file=sys.stderr,
          flush=True)
    Yearly(services, clock, cards, year, options, maintain).run(name)
    print(f"{name}: measuring on the loaded history ...", file=sys.stderr, flush=True)
    loaded = measure_loaded(services, year, options, name)
    mix = ", ".join(f"{s} {n:,}" for s, n in sorted(year.by_service.items()))
    decided = len(year.decided.seconds)
    notes = [
        where,
        f"blobs in {services.settings.blob_dir}; aggregate cache "
        f"{services.settings.aggregate_cache_size:,} (CIVICVAULT_AGGREGATE_CACHE_SIZE)",
        f"seed (untimed): {len(residents):,} residents, {4 * len(residents):,} documents, "
        f"{seed_events:,} events in {seed_seconds:.1f} s "
        f"({len(residents) / seed_seconds:,.1f} residents/s)",
        f"year: {year.start:%Y-%m-%d %H:%M} to {year.end:%Y-%m-%d %H:%M} UTC, "
        f"{options.applications:,} applications online ({mix}), in blocks of "
        f"{options.block:,} beside as many fetches; {year.seconds:,.1f} s wall",
        f"decided in full: {decided:,}; left open at their last step: {year.left_open:,}; "
        f"next decision after the year's end: {year.pending_at_end:,}",
        (f"read models caught up every {options.follow_every:,} applications (untimed): "
         f"{year.follow_events:,} events in {year.follow_seconds:,.1f} s "
         f"({year.follow_events / max(year.follow_seconds, 1e-9):,.0f} events/s)")
        if options.follow_every else "read models not followed during the year (--no-follow)",
        *([f"autovacuum's work (the test server runs without it), done after each block "
           f"(untimed): {year.vacuums:,} vacuums and {year.analyzes:,} analyses of tables in "
           f"{year.maintenance_seconds:,.1f} s"] if maintain is not None else []),
        f"history: {loaded.events:,} events in the log; {loaded.queue_length:,} applications in "
        f"{DEPARTMENT}'s queue; tallies on {loaded.tally_days:,} days",
        f"final catch-up: {loaded.catch_up_events:,} events in {loaded.catch_up_seconds:.2f} s"
        + ("" if loaded.analyze_seconds is None
           else f"; ANALYZE of the views and the log: {loaded.analyze_seconds:.2f} s"),
    ]
    return BackendResult(name, notes, options.applications, options.workers, year, loaded)


@contextmanager
def sqlite_vault(root: Path, clock: DemoClock) -> Iterator[tuple[Services, str, None]]:
    """A vault on a fresh SQLite file under ``root``, on ``clock``, closed after."""
    settings = scratch_settings(root / "sqlite")
    with open_services(settings, clock=clock) as services:
        yield services, f"database {settings.sqlite_path}", None


@contextmanager
def postgres_vault(
    dsn: str, server: str, root: Path, clock: DemoClock
) -> Iterator[tuple[Services, str, Maintain]]:
    """A vault on a fresh schema at ``dsn``, on ``clock``, with what autovacuum would do to
    it; closed and the schema dropped after, even on error."""
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        settings = scratch_settings(root / "postgres", with_schema(dsn, schema))
        with open_services(settings, clock=clock) as services:
            yield services, (f"server {server} at {redact(dsn)}, schema {schema} "
                             "(dropped at the end)"), partial(autovacuum, dsn, schema)
    finally:
        drop_schema(dsn, schema)


# Output


def latency_row(calls: Calls, goal_ms: float | None) -> list[str]:
    p99 = calls.percentile_ms(0.99)
    return [
        calls.label, f"{len(calls.seconds):,}", f"{calls.percentile_ms(0.5):.2f}", f"{p99:.2f}",
        "(info)" if goal_ms is None else f"p99 < {goal_ms:.0f} ms",
        "-" if goal_ms is None else "yes" if p99 < goal_ms else "NOT met",
    ]


def report(result: BackendResult) -> None:
    y, loaded = result.year, result.loaded
    print(f"== {result.name} ==")
    for note in result.notes:
        print(f"  {note}")
    print()
    headers = ["the year (timed per call)", "calls", "mean ms", "p50 ms", "p99 ms"]
    print_table(headers, [c.row() for c in (y.apply, y.step, y.last, y.decided, y.fetch)])
    print()
    print_table(
        ["applications vs fetches", "applications/s", "fetches/s", "ratio", "goal", "met"],
        [[f"accepted, reviewed, decided vs bare fetch, {result.workers} worker"
          + ("s" if result.workers > 1 else ""), f"{y.applications_rate:,.1f}",
          f"{y.fetches_rate:,.1f}", f"{y.ratio:.3f}", "(info)", "-"]],
    )
    print(f"  wall time: application blocks {y.applications_wall:,.1f} s (following left out), "
          f"fetch blocks {y.fetches_wall:,.1f} s")
    print(f"  one application costs as much as {1 / y.ratio:.1f} fetches")
    print("  mean ms in the first and the last tenth of the year: " + "; ".join(
        f"{what} {c.tenth_ms(0):.2f} -> {c.tenth_ms(-1):.2f}"
        for what, c in (("apply", y.apply), ("last approval", y.last), ("fetch", y.fetch))
    ))
    print()
    rows = [latency_row(c, FIGURES_GOAL_MS) for c in loaded.by.values()]
    rows += [latency_row(loaded.queue_first, QUEUE_GOAL_MS), latency_row(loaded.queue_walked, None)]
    print_table(["on the loaded history (no baseline)", "calls", "p50 ms", "p99 ms", "goal",
                 "met"], rows)
    city = loaded.city
    print(
        f"  the city's figures for the year: accepted {city.accepted:,}, decided "
        f"{city.decided:,}, on time {city.on_time_rate}, {city.avg_working_days} working days "
        f"on average, overdue now {city.overdue:,}, materials reused {city.materials_reused:,}"
    )
    if not result.sound:
        print(f"  ERROR: expected {result.applications:,} accepted and "
              f"{len(y.decided.seconds):,} decided")
    print(f"goal met ({result.name}): {'yes' if result.goal_met else 'NOT met'}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="300 applications: a smoke test")
    parser.add_argument("--applications", type=int, help="applications in the year (600,000)")
    parser.add_argument("--residents", type=int, help="residents applying (applications / 20)")
    parser.add_argument("--block", type=int, help="applications, then fetches, per block")
    parser.add_argument("--workers", type=int, default=1,
                        help="threads making the year's calls side by side (1)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--follow-every", type=int,
                        help="applications between catch-ups of the read models (100)")
    parser.add_argument("--no-follow", action="store_true",
                        help="catch the read models up only after the year")
    args = parser.parse_args(argv)
    given = [args.applications, args.residents, args.block, args.follow_every, args.workers]
    if any(size is not None and size < 1 for size in given):
        parser.error("sizes must be at least 1")
    applications: int = args.applications or (300 if args.quick else 600_000)
    options = Options(
        applications=applications,
        residents=args.residents or max(1, applications // 20),
        block=args.block or (50 if args.quick else 1_000),
        workers=args.workers,
        follow_every=0 if args.no_follow else args.follow_every or (10 if args.quick else 100),
        figure_calls=20 if args.quick else 200,
        queue_calls=50 if args.quick else 500,
    )
    print(
        f"civicvault applications benchmark — eventsourcing {version('eventsourcing')}, "
        f"{applications:,} applications from {options.residents:,} residents over a year, "
        f"beside {applications:,} fetches, per backend{' (quick)' if args.quick else ''}"
    )
    print()
    results: list[BackendResult] = []
    with tempfile.TemporaryDirectory(prefix="civicvault-bench-") as tmp:
        root = Path(tmp)
        if args.backend in ("sqlite", "both"):
            clock = DemoClock()
            with sqlite_vault(root, clock) as (services, where, maintain):
                results.append(measure(services, clock, "SQLite", options, where, maintain))
            report(results[-1])
        dsn = test_dsn()
        server = postgres_reachable(dsn) if args.backend in ("postgres", "both") else None
        if server is not None:
            clock = DemoClock()
            with postgres_vault(dsn, server, root, clock) as (services, where, maintain):
                results.append(measure(services, clock, "PostgreSQL", options, where, maintain))
            report(results[-1])
    backends = ", ".join(r.name for r in results) or "no backend"
    met = bool(results) and all(r.goal_met for r in results)
    print(
        f"goal met: {'yes' if met else 'no'} (figures for the city p99 < "
        f"{FIGURES_GOAL_MS:.0f} ms, a queue page p99 < {QUEUE_GOAL_MS:.0f} ms, on {backends})"
    )
    if not all(r.sound for r in results):
        print("ERROR: the figures do not count what the year made (see above)")
        return 1
    return 0


if __name__ == "__main__":
    stopping.run(main)
