"""Read-model benchmark: rebuild events/s vs a raw read of the log; the follower's lag under load.

What is measured
----------------
For each backend — SQLite (the embedded default, in a temporary directory) and PostgreSQL
(DSN from ``CIVICVAULT_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``,
in a fresh ``bench_<random>`` schema given in the database URL and dropped at the end, even on
error; skipped with a note if unreachable) — the services and their
:class:`projections.runner.ViewRunner` are built by ``adapters.wiring.open_services`` with a
generated master key and local blobs, every other setting at its default.

Fill, untimed for the ratios (its time is printed): the default policy is published
(``policies.current_version()``), then the event store is filled up to N events (default
1,000,000; ``--quick`` 20,000; ``--events``) with a seeded, realistic mix built from the domain
aggregates in memory and written with ``store.save(*events)`` in transactions of about 5,000
events, kept in the order the commands would have written them (an allowed fetch's
``AccessAttempt.Recorded``, ``Consent.Used`` and ``Document.Reused`` side by side). Residents
(N / 200 by default, ``--residents``) join over the first half of the log: each is
registered (a data key in the key table and ``Resident.Registered``), most get a credit grade
(sealed ``Resident.GradeRecorded``), file 1–3 small documents (1–4 KiB of random bytes sealed
under a fresh document key into a real blob; ``Document.Submitted`` or, for a quarter,
``Document.Issued``; some submitted ones ``Document.Verified``; ``Resident.DocumentFiled``
each) and grant 1–2 consents for services whose document types they hold
(``Consent.Granted``, ``Resident.ConsentFiled``). All the rest are fetches by a random resident's
departments, judged and recorded by ``vault.judgement.record_fetch`` on the in-memory
aggregates against the default policy, as ``fetches.fetch`` does: mostly under one of
the resident's consents, some by a department the resident never consented to; an allowed
fetch appends ``AccessAttempt.Recorded`` (its grade and reasons sealed) + ``Consent.Used`` +
``Document.Reused``, a denied one only ``AccessAttempt.Recorded``. Now and then a consent is
revoked or a document withdrawn. The mix is printed. On PostgreSQL the events table is then
analyzed (``ANALYZE``), as autovacuum does after a bulk load on a server that runs it; the
test server here runs with autovacuum off.

1. Rebuild throughput. After an untimed warm-up pass over the log (it counts the
   notifications and warms the page cache), timed, each once, in this order:

   a. raw read, the baseline: ``application.recorder.select_notifications(start, BATCH)``
      paging through every notification, in the pages the rebuild reads
      (``view_runner.rebuild_batch``, ``projections.runner.REBUILD_BATCH``), and nothing else;
   b. raw read + decode, for information: the same, plus
      ``application.mapper.to_domain_events`` on each page, as the runner decodes (the page's
      keys read in one query, then personal fields decrypted), which separates the cost of
      decoding from the cost of applying;
   c. rebuild: ``services.view_runner.rebuild()`` — a fresh generation of the views built
      from the first event and put in service, the old one dropped. The CPU time of the
      thread that ran it is printed beside its wall time: near equal means the rebuild is
      bound by Python's work per event (decoding, sealing, building statements), not by
      waiting for the database.

   events/s = notifications in the log / seconds, for all three; the ratio is
   rebuild / raw read. Goal: >= 0.3 on PostgreSQL (the SQLite ratio is printed for
   information). The rows in each view after the rebuild are printed beside what the fill
   wrote, as a check that the rebuild applied the whole log.

2. Lag under load. Set-up, untimed: one resident per load thread (``--threads``, default 8)
   registers, submits one 256 KiB document of random bytes (an ``id-card``) and grants
   ``civil-affairs`` an unlimited consent for ``subsistence-allowance``. The in-process
   follower is started (a thread running ``services.view_runner.follow(stop_event)``) and
   waited for until it has caught up; each thread fetches twice (warm-up). Then each thread
   loops ``fetches.fetch`` on its own resident's document and drains the content, for
   ``--seconds`` (default 10; ``--quick`` 3), while another thread samples
   ``services.view_runner.lag()`` every 50 ms (the seconds the oldest event not yet in the
   views has waited, and how many there are). Printed: fetches/s, fetch p50/p99, the lag's
   p50, p99 and max in ms, the most events ever behind, and how long after the load stopped
   the views caught up. Goal: lag p99 < 1 s, on each backend. Baseline, for information:
   the same load with the follower stopped (run after it), its fetches/s and the ratio
   followed / unfollowed.

The follower, the sampler and the load share one process (and its GIL), as they do when
``civicvault serve`` keeps the views up to date itself (``projections_in_process``).

Run from the project root::

    .venv/bin/python -m bench.projections                   # 1,000,000 events, 10 s of load
    .venv/bin/python -m bench.projections --quick           # 20,000 events, 3 s: a smoke test
    .venv/bin/python -m bench.projections --events 200000 --no-postgres
    .venv/bin/python -m bench.projections --no-sqlite       # PostgreSQL only
    CIVICVAULT_TEST_POSTGRES_DSN=postgresql://user:pw@host:5432/db \
        .venv/bin/python -m bench.projections
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import math
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from adapters.wiring import Core, Services
from bench import stopping
from bench.backends import on_each_backend, postgres_services, sqlite_services
from bench.tables import print_table
from keys.envelope import new_document_key, seal_document
from policy.catalogue import catalogue
from policy.decision import DecisionPoint
from policy.rules import default_policy_text, parse_policy
from policy.scales import Grade
from projections.schema import view_table
from vault.consent import Consent
from vault.document import Document
from vault.inputs import ConsentRequest, DocumentDetails
from vault.judgement import record_fetch
from vault.resident import Resident

KiB = 1024
SAVE_EVENTS = 5000  # events per store.save in the fill
ONBOARD_PER_SAVE = SAVE_EVENTS // 10  # newcomers per save at most (about 9 events each)
EVENTS_PER_RESIDENT = 200  # the default number of residents is N / this
SEED = 20240611
GOAL_RATIO = 0.3  # rebuild / raw read, on PostgreSQL
GOAL_LAG_SECONDS = 1.0  # lag p99 under load
SAMPLE_SECONDS = 0.05
LOAD_BYTES = 256 * KiB
LOAD_DEPARTMENT = "civil-affairs"
LOAD_PURPOSE = "subsistence-allowance"
LOAD_WARMUP = 2
# The fill's mix (fractions of fetches, or of residents / documents).
NO_CONSENT = 0.06  # fetches by a department the resident gave no consent for that purpose
REVOKE = 0.001  # per fetch: one of the resident's consents is revoked
WITHDRAW = 0.0005  # per fetch: one of the resident's documents is withdrawn
GRADED = 0.9
GRADES = ([Grade.A, Grade.B, Grade.C, Grade.D], [20, 40, 32, 8])
ISSUED = 0.25
VERIFIED = 0.3  # of the submitted documents
PURPOSE_WEIGHTS = {
    "subsistence-allowance": 35,
    "residence-permit": 30,
    "employment-subsidy": 25,
    "housing-subsidy": 10,
}
ISSUER = {
    "id-card": "public-security",
    "household-register": "public-security",
    "birth-cert": "public-security",
    "marriage-cert": "civil-affairs",
    "income-proof": "human-resources",
    "diploma": "human-resources",
    "social-insurance-record": "human-resources",
    "property-cert": "housing",
}
EXPIRES = {"id-card": timedelta(days=3650), "income-proof": timedelta(days=180)}


# The fill


@dataclass(frozen=True)
class Service:
    purpose: str
    department: str
    doc_types: tuple[str, ...]


def services_of_policy() -> dict[str, Service]:
    """Each purpose of the default policy, its department and the document types it takes."""
    by_purpose: dict[str, Service] = {}
    for rule in parse_policy(default_policy_text()).access:
        known = by_purpose.get(rule.purpose)
        doc_types = (*known.doc_types, rule.doc_type) if known else (rule.doc_type,)
        by_purpose[rule.purpose] = Service(rule.purpose, rule.department, doc_types)
    return by_purpose


@dataclass
class Person:
    resident: Resident
    documents: list[Document]
    consents: list[Consent]


@dataclass
class Fill:
    events: int = 0  # appended by the fill (the policy's are not counted)
    seconds: float = 0.0
    residents: int = 0
    documents: int = 0
    blob_bytes: int = 0
    consents: int = 0
    allowed: int = 0
    denied: int = 0
    by_type: Counter[str] = field(default_factory=Counter)


class Filler:
    """Builds the log from aggregates in memory, as the commands would have written it."""

    def __init__(self, vault: Core, residents: int, seed: int) -> None:
        self.vault = vault
        self.target_residents = residents
        self.rng = random.Random(seed)
        self.services = services_of_policy()
        self.point: DecisionPoint = vault.policies.decision_point()
        self.people: list[Person] = []
        self.fill = Fill()
        self.pending: list[Any] = []  # events for the next save, in command order
        self.touched: set[str] = set()  # residents whose keys the next save needs

    def run(self, total: int) -> Fill:
        """Append events until the store holds ``total`` (or a few more, for tiny totals)."""
        start = time.perf_counter()
        budget = total - self.vault.events.head()
        half = max(1, budget // 2)
        while self.fill.events < budget:
            due = min(
                self.target_residents,
                math.ceil(self.target_residents * (self.fill.events + SAVE_EVENTS) / half),
            )
            # At most a save's worth of newcomers at a time: where onboarding every
            # resident takes more events than half the budget (a million residents in ten
            # million events), the schedule runs ahead of the saves, and onboarding all
            # that are due at once made each save larger than the last, until one no
            # longer fitted in a message to PostgreSQL.
            self.onboard(min(due - len(self.people), ONBOARD_PER_SAVE))
            behind = len(self.people) < due
            while not behind and len(self.pending) < SAVE_EVENTS:
                left = budget - self.fill.events - len(self.pending)
                if left <= 0:
                    break
                self.fetch(self.rng.choice(self.people), force_denied=left < 3)
            self.save()
        self.fill.seconds = time.perf_counter() - start
        self.fill.residents = len(self.people)
        return self.fill

    def save(self) -> None:
        if not self.pending:
            return
        # The mapper seals personal fields with each resident's key: one query for the batch.
        self.vault.keys.prefetch(self.touched)
        self.vault.store.save(*self.pending)
        self.fill.events += len(self.pending)
        self.fill.by_type.update(type(e).__qualname__ for e in self.pending)
        self.pending = []
        self.touched = set()

    def collect(self, *aggregates: Any) -> None:
        for aggregate in aggregates:
            self.pending.extend(aggregate.collect_events())

    def onboard(self, count: int) -> None:
        if count <= 0:
            return
        first = len(self.people)
        ids = [f"resident-{n:07d}" for n in range(first, first + count)]
        self.vault.keys.create_many(ids)  # also caches the new keys
        for resident_id in ids:
            self.people.append(self.newcomer(resident_id))
            self.touched.add(resident_id)

    def newcomer(self, resident_id: str) -> Person:
        rng = self.rng
        now = datetime.now(UTC)
        resident = Resident(resident_id=resident_id, timestamp=now)
        if rng.random() < GRADED:
            grade = rng.choices(*GRADES)[0]
            resident.record_grade(grade, rng.randrange(1, 10**6), now - timedelta(days=1), now)
        self.collect(resident)
        doc_types = ["id-card"]
        others = sorted({t for s in self.services.values() for t in s.doc_types} - {"id-card"})
        doc_types += rng.sample(others, rng.randint(0, 2))
        documents = [self.document(resident, doc_type, now) for doc_type in doc_types]
        held = set(doc_types)
        choices = [s for s in self.services.values() if held & set(s.doc_types)]
        weights = [PURPOSE_WEIGHTS.get(s.purpose, 10) for s in choices]
        chosen: dict[str, Service] = {}
        for _ in range(rng.randint(1, 2)):
            service = rng.choices(choices, weights)[0]
            chosen[service.purpose] = service
        consents = []
        for service in chosen.values():
            consent = Consent(
                resident_id=resident_id,
                department=service.department,
                doc_types=[t for t in service.doc_types if t in held],
                purpose=service.purpose,
                valid_from=now,
                valid_until=now + timedelta(days=rng.choice((30, 90, 365))),
                max_uses=rng.choice((None, None, None, 1000)),
                granted_at=now,
                timestamp=now,
            )
            resident.file_consent(consent.id, consent.department, consent.purpose, now)
            self.collect(consent, resident)
            consents.append(consent)
        self.fill.consents += len(consents)
        return Person(resident, documents, consents)

    def document(self, resident: Resident, doc_type: str, now: datetime) -> Document:
        """A document sealed into a small real blob, filed as the commands file it."""
        rng = self.rng
        resident_id = resident.resident_id
        document_id = uuid4()
        blob_key = f"documents/{document_id.hex[:2]}/{document_id.hex}"
        content = os.urandom(rng.randint(1 * KiB, 4 * KiB))
        document_key = new_document_key()
        wrapped = self.vault.keys.wrap_document_key(resident_id, str(document_id), document_key)
        sealed = seal_document(
            document_key, [content], document_id=str(document_id), resident_id=resident_id
        )
        self.fill.blob_bytes += self.vault.blobs.put(blob_key, sealed)
        fields: dict[str, Any] = {
            "resident_id": resident_id,
            "doc_type": doc_type,
            "title": catalogue().entries[("doc_type", doc_type)].name_zh,
            "filename": f"{doc_type}-{rng.randrange(10**4):04d}.pdf",
            "content_type": "application/pdf",
            "expires_at": now + EXPIRES[doc_type] if doc_type in EXPIRES else None,
            "replaces": None,
            "size": len(content),
            "content_sha256": hashlib.sha256(content).hexdigest(),
            "blob_key": blob_key,
            "sealed_key": base64.b64encode(wrapped).decode(),
        }
        if rng.random() < ISSUED:
            issuer = ISSUER.get(doc_type, "civil-affairs")
            document = Document.issue(
                document_id, department=issuer, officer=self.officer(issuer), at=now, **fields
            )
        else:
            document = Document.submit(document_id, at=now, **fields)
            if rng.random() < VERIFIED:
                department = rng.choice([s.department for s in self.services.values()])
                document.verify(department, self.officer(department), now)
        resident.file_document(document.id, now)
        self.collect(document, resident)
        self.fill.documents += 1
        return document

    def officer(self, department: str) -> str:
        return f"{department}-officer-{self.rng.randrange(20):02d}"

    def fetch(self, person: Person, *, force_denied: bool = False) -> None:
        """One department's fetch, judged and recorded as ``fetches.fetch`` does."""
        rng = self.rng
        resident = person.resident
        consented = {(c.department, c.purpose) for c in person.consents}
        if person.consents and not force_denied and rng.random() >= NO_CONSENT:
            consent = rng.choice(person.consents)
            service = self.services[consent.purpose]
            doc_types: Iterable[str] = consent.doc_types
        else:
            strangers = [
                s for s in self.services.values() if (s.department, s.purpose) not in consented
            ]
            service = rng.choice(strangers)
            doc_types = service.doc_types
        documents = [d for d in person.documents if d.doc_type in doc_types] or person.documents
        document = rng.choice(documents)
        department, purpose = service.department, service.purpose
        officer = self.officer(department)
        now = datetime.now(UTC)
        access, _, changed = record_fetch(
            resident=resident,
            resident_id=resident.resident_id,
            document=document,
            document_id=document.id,
            consents=[c for c in person.consents if (c.department, c.purpose) == (department,
                                                                                   purpose)],
            officer=officer,
            department=department,
            purpose=purpose,
            point=self.point,
            request_id=uuid4().hex,
            now=now,
        )
        self.touched.add(resident.resident_id)
        self.collect(*changed)
        if access.allowed:
            self.fill.allowed += 1
        else:
            self.fill.denied += 1
        if force_denied:
            return
        if rng.random() < REVOKE and (active := [c for c in person.consents
                                                 if c.revoked_at is None]):
            consent = rng.choice(active)
            consent.revoke(now)
            self.collect(consent)
        if rng.random() < WITHDRAW and (live := [d for d in person.documents if d.is_active]):
            document = rng.choice(live)
            document.withdraw(now)
            self.collect(document)


# 1. Rebuild vs raw read


@dataclass
class Rebuild:
    notifications: int
    raw_seconds: float
    decoded_seconds: float
    rebuild_seconds: float
    rebuild_cpu_seconds: float
    position: int
    batch: int
    rows: dict[str, int]

    @property
    def raw_rate(self) -> float:
        return self.notifications / self.raw_seconds

    @property
    def decoded_rate(self) -> float:
        return self.notifications / self.decoded_seconds

    @property
    def rebuild_rate(self) -> float:
        return self.notifications / self.rebuild_seconds

    @property
    def ratio(self) -> float:
        return self.rebuild_rate / self.raw_rate


def read_log(vault: Core, page: int, decode: Callable[[Any], object] | None = None) -> int:
    """Page through every notification (``decode`` given each page); returns how many."""
    count = 0
    start = 1
    while notifications := vault.application.recorder.select_notifications(start, page):
        if decode is not None:
            decode(notifications)
        count += len(notifications)
        start = notifications[-1].id + 1
    return count


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def view_rows(services: Services) -> dict[str, int]:
    db = services.view_runner.db
    generation = services.view_runner.generation()
    queries = {
        "residents": "SELECT COUNT(*) FROM {}",
        "library": "SELECT COUNT(*) FROM {}",
        "library reuse_count": "SELECT COALESCE(SUM(reuse_count), 0) FROM {}",
        "consents": "SELECT COUNT(*) FROM {}",
        "consents uses": "SELECT COALESCE(SUM(uses), 0) FROM {}",
        "access": "SELECT COUNT(*) FROM {}",
    }
    rows: dict[str, int] = {}
    with db.transaction(commit=False) as run:
        for label, query in queries.items():
            table = view_table(db, label.split()[0], generation)
            rows[label] = int(run(query.format(table))[0][0])
    return rows


def measure_rebuild(services: Services) -> Rebuild:
    runner = services.view_runner
    page = runner.rebuild_batch
    notifications = read_log(services, page)  # warm-up: counts, and warms the page cache
    raw = timed(lambda: read_log(services, page))
    decoded = timed(
        lambda: read_log(services, page, services.application.mapper.to_domain_events)
    )
    position = 0

    def rebuild() -> None:
        nonlocal position
        position = runner.rebuild()

    cpu = time.thread_time()
    seconds = timed(rebuild)
    cpu = time.thread_time() - cpu
    return Rebuild(
        notifications, raw, decoded, seconds, cpu, position, page, view_rows(services)
    )


# 2. Lag under load


@dataclass
class Load:
    label: str
    threads: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    first_error: str = ""
    lags: list[float] = field(default_factory=list)  # seconds
    behind: list[int] = field(default_factory=list)
    caught_up_after: float | None = None

    @property
    def fetches(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.fetches / self.seconds

    def latency_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    def lag_ms(self, q: float) -> float:
        return percentile(self.lags, q) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def drain(chunks: Iterable[bytes]) -> int:
    total = 0
    for chunk in chunks:
        total += len(chunk)
    return total


def set_up_load(vault: Core, threads: int) -> list[tuple[str, UUID]]:
    """One resident per thread, each with one 256 KiB document and an unlimited consent."""
    targets = []
    now = datetime.now(UTC)
    for n in range(threads):
        resident_id = f"load-resident-{n:03d}"
        vault.residents.register(resident_id)
        document = vault.documents.submit(
            resident_id,
            io.BytesIO(os.urandom(LOAD_BYTES)),
            DocumentDetails(doc_type="id-card", title="居民身份证 (bench)"),
        ).value
        vault.consents.grant(
            resident_id,
            ConsentRequest(
                department=LOAD_DEPARTMENT,
                doc_types=("id-card",),
                purpose=LOAD_PURPOSE,
                valid_until=now + timedelta(days=30),
            ),
        )
        targets.append((resident_id, document.id))
    return targets


def fetch_once(vault: Core, resident_id: str, document_id: UUID) -> None:
    fetched = vault.fetches.fetch(
        officer="officer-load",
        department=LOAD_DEPARTMENT,
        resident_id=resident_id,
        document_id=document_id,
        purpose=LOAD_PURPOSE,
    )
    if drain(fetched.content) != LOAD_BYTES:
        raise RuntimeError("a fetch returned the wrong number of bytes")


def run_load(services: Services, targets: list[tuple[str, UUID]], seconds: float,
             load: Load, *, sample: bool) -> None:
    """Every thread fetches its own resident's document until the time is up."""
    lock = threading.Lock()
    done = threading.Event()
    start = time.perf_counter()
    deadline = start + seconds

    def fetcher(resident_id: str, document_id: UUID) -> None:
        latencies: list[float] = []
        while (began := time.perf_counter()) < deadline:
            try:
                fetch_once(services, resident_id, document_id)
            except Exception as e:
                with lock:
                    load.failed += 1
                    load.first_error = load.first_error or f"{type(e).__name__}: {e}"
                continue
            latencies.append(time.perf_counter() - began)
        with lock:
            load.latencies.extend(latencies)

    def sampler() -> None:
        while not done.is_set():
            began = time.perf_counter()
            behind, lag = services.view_runner.lag()
            load.lags.append(lag)
            load.behind.append(behind)
            done.wait(max(0.0, SAMPLE_SECONDS - (time.perf_counter() - began)))

    workers = [threading.Thread(target=fetcher, args=target) for target in targets]
    watcher = threading.Thread(target=sampler) if sample else None
    if watcher:
        watcher.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    load.seconds = time.perf_counter() - start
    done.set()
    if watcher:
        watcher.join()


def measure_lag(services: Services, threads: int, seconds: float) -> tuple[Load, Load]:
    runner = services.view_runner
    targets = set_up_load(services, threads)
    followed = Load("follower running", threads)
    unfollowed = Load("follower stopped (baseline)", threads)
    stop = threading.Event()
    follower = threading.Thread(target=runner.follow, args=(stop,), name="views-follower")
    follower.start()
    try:
        runner.wait_for(services.events.head(), 120)
        for resident_id, document_id in targets:
            for _ in range(LOAD_WARMUP):
                fetch_once(services, resident_id, document_id)
        runner.wait_for(services.events.head(), 120)
        run_load(services, targets, seconds, followed, sample=True)
        head = services.events.head()
        began = time.perf_counter()
        if runner.wait_for(head, 120):
            followed.caught_up_after = time.perf_counter() - began
    finally:
        stop.set()
        follower.join()
    run_load(services, targets, seconds, unfollowed, sample=False)
    return followed, unfollowed


# Per backend


@dataclass
class BackendResult:
    name: str
    notes: list[str]
    fill: Fill
    rebuild: Rebuild
    followed: Load
    unfollowed: Load
    rebuild_goal: bool  # whether the rebuild ratio's goal applies here

    @property
    def rebuild_met(self) -> bool:
        return self.rebuild.ratio >= GOAL_RATIO

    @property
    def lag_met(self) -> bool:
        return (
            self.followed.failed == 0
            and bool(self.followed.lags)
            and percentile(self.followed.lags, 0.99) < GOAL_LAG_SECONDS
        )

    @property
    def goal_met(self) -> bool:
        return self.lag_met and (self.rebuild_met or not self.rebuild_goal)


@dataclass(frozen=True)
class Options:
    events: int
    residents: int
    threads: int
    seconds: float


def analyze_the_log(services: Services) -> None:
    """On PostgreSQL, gather the events table's statistics after the fill, as autovacuum
    does after any bulk load on a server that runs it (a test server may not: without
    statistics the planner sorts a whole stretch of the log to read a few topics of it)."""
    db = services.view_runner.db
    if db.sqlite:
        return
    table = db.table(services.application.recorder.events_table_name)  # type: ignore[attr-defined]
    with db.transaction() as run:
        run(f"ANALYZE {table}")


def measure(services: Services, name: str, options: Options) -> tuple[Fill, Rebuild, Load, Load]:
    services.policies.current_version()
    print(f"{name}: filling {options.events:,} events ...", flush=True)
    fill = Filler(services, options.residents, SEED).run(options.events)
    analyze_the_log(services)
    print(f"{name}: filled in {fill.seconds:.1f} s; rebuilding ...", flush=True)
    rebuild = measure_rebuild(services)
    print(f"{name}: rebuilt in {rebuild.rebuild_seconds:.1f} s; lag under load ...", flush=True)
    followed, unfollowed = measure_lag(services, options.threads, options.seconds)
    print(flush=True)
    return fill, rebuild, followed, unfollowed


def common_notes(services: Services, fill: Fill, rebuild: Rebuild) -> list[str]:
    fetches = fill.allowed + fill.denied
    return [
        f"blobs in {services.settings.blob_dir}",
        f"fill (untimed for the ratio): {fill.events:,} events in {fill.seconds:.1f} s "
        f"({fill.events / fill.seconds:,.0f} events/s) in saves of ~{SAVE_EVENTS:,}; "
        f"the log holds {rebuild.notifications:,} notifications (policy publication included)",
        f"{fill.residents:,} residents, {fill.documents:,} documents "
        f"({fill.blob_bytes / 2**20:,.1f} MiB of sealed blobs), {fill.consents:,} consents; "
        f"{fetches:,} fetches: {fill.allowed:,} allowed, {fill.denied:,} denied "
        f"({fill.denied / max(1, fetches):.1%})",
    ]


def run_sqlite(root: Path, options: Options) -> BackendResult:
    with sqlite_services(root) as scratch:
        fill, rebuild, followed, unfollowed = measure(scratch.services, "SQLite", options)
        notes = [scratch.where, *common_notes(scratch.services, fill, rebuild)]
    return BackendResult("SQLite", notes, fill, rebuild, followed, unfollowed, False)


def run_postgres(dsn: str, server: str, root: Path, options: Options) -> BackendResult:
    with postgres_services(dsn, server, root) as scratch:
        fill, rebuild, followed, unfollowed = measure(scratch.services, "PostgreSQL", options)
        notes = [scratch.where, *common_notes(scratch.services, fill, rebuild)]
    return BackendResult("PostgreSQL", notes, fill, rebuild, followed, unfollowed, True)


# Output


def report(result: BackendResult) -> None:
    fill, r = result.fill, result.rebuild
    print(f"== {result.name} ==")
    for note in result.notes:
        print(f"  {note}")
    print()
    print_table(
        ["event type (fill)", "events", "share"],
        [
            [name, f"{count:,}", f"{count / fill.events:.1%}"]
            for name, count in fill.by_type.most_common()
        ],
    )
    print()
    print_table(
        ["1. read the log / rebuild the views", "events", "seconds", "events/s"],
        [
            [label, f"{r.notifications:,}", f"{seconds:.2f}", f"{r.notifications / seconds:,.0f}"]
            for label, seconds in (
                (f"raw read: select_notifications, pages of {r.batch}", r.raw_seconds),
                ("raw read + mapper.to_domain_events (info)", r.decoded_seconds),
                ("view_runner.rebuild()", r.rebuild_seconds),
            )
        ],
    )
    print(
        f"  the rebuild's thread used {r.rebuild_cpu_seconds:.2f} s of CPU in its "
        f"{r.rebuild_seconds:.2f} s ({r.rebuild_cpu_seconds / r.rebuild_seconds:.0%})"
    )
    expected = {
        "residents": fill.by_type["Resident.Registered"],
        "library": fill.by_type["Document.Submitted"] + fill.by_type["Document.Issued"],
        "library reuse_count": fill.by_type["Document.Reused"],
        "consents": fill.by_type["Consent.Granted"],
        "consents uses": fill.by_type["Consent.Used"],
        "access": fill.by_type["AccessAttempt.Recorded"],
    }
    print(
        f"  rebuild reached position {r.position:,}; views after it (rows / sums, and what the "
        "fill wrote): "
        + ", ".join(f"{k} {v:,} ({expected[k]:,})" for k, v in r.rows.items())
    )
    print()
    f, u = result.followed, result.unfollowed
    print_table(
        [
            f"2. load: {f.threads} threads, fetches.fetch",
            *("fetches", "seconds", "fetches/s", "p50 ms", "p99 ms", "failed"),
        ],
        [
            [
                load.label,
                f"{load.fetches:,}",
                f"{load.seconds:.2f}",
                f"{load.rate:,.1f}",
                f"{load.latency_ms(0.5):.1f}",
                f"{load.latency_ms(0.99):.1f}",
                f"{load.failed}",
            ]
            for load in (f, u)
        ],
    )
    if f.first_error or u.first_error:
        print(f"  first error: {f.first_error or u.first_error}")
    caught = f"{f.caught_up_after * 1000:,.0f} ms" if f.caught_up_after is not None else "never"
    print(
        f"  lag, sampled every {SAMPLE_SECONDS * 1000:.0f} ms with view_runner.lag() "
        f"({len(f.lags)} samples): p50 {f.lag_ms(0.5):,.0f} ms, p99 {f.lag_ms(0.99):,.0f} ms, "
        f"max {f.lag_ms(1.0):,.0f} ms; at most {max(f.behind, default=0):,} events behind; "
        f"caught up {caught} after the load stopped"
    )
    print()
    pg = result.rebuild_goal
    print_table(
        ["goal", "measured", "baseline", "ratio", "goal", "met"],
        [
            [
                "rebuild vs raw read (events/s)",
                f"{r.rebuild_rate:,.0f}",
                f"{r.raw_rate:,.0f}",
                f"{r.ratio:.2f}",
                f">= {GOAL_RATIO}" if pg else "(info)",
                ("yes" if result.rebuild_met else "no") if pg else "-",
            ],
            [
                "raw read + decode vs raw read (events/s)",
                f"{r.decoded_rate:,.0f}",
                f"{r.raw_rate:,.0f}",
                f"{r.decoded_rate / r.raw_rate:.2f}",
                "(info)",
                "-",
            ],
            [
                "lag p99 under load (ms)",
                f"{f.lag_ms(0.99):,.0f}",
                "-",
                "-",
                f"< {GOAL_LAG_SECONDS * 1000:,.0f}",
                "yes" if result.lag_met else "no",
            ],
            [
                "fetches/s, follower running vs stopped",
                f"{f.rate:,.1f}",
                f"{u.rate:,.1f}",
                f"{f.rate / u.rate:.2f}",
                "(info)",
                "-",
            ],
        ],
    )
    print(f"goal met ({result.name}): {'yes' if result.goal_met else 'no'}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run for a smoke test")
    parser.add_argument("--events", type=int, help="events in the store before the rebuild")
    parser.add_argument("--residents", type=int, help="residents in the fill")
    parser.add_argument("--threads", type=int, default=8, help="fetching threads in the load")
    parser.add_argument("--seconds", type=float, help="seconds of load, each way")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args(argv)
    if args.no_postgres and args.no_sqlite:
        parser.error("--no-postgres and --no-sqlite leave nothing to measure")
    events: int = args.events or (20_000 if args.quick else 1_000_000)
    options = Options(
        events=events,
        residents=args.residents or max(20, events // EVENTS_PER_RESIDENT),
        threads=args.threads,
        seconds=args.seconds or (3.0 if args.quick else 10.0),
    )

    print(
        f"civicvault read-model benchmark — eventsourcing {version('eventsourcing')}, "
        f"{options.events:,} events from {options.residents:,} residents per backend, then "
        f"{options.seconds:g} s of fetches from {options.threads} threads with and without the "
        f"follower{' (quick)' if args.quick else ''}"
    )
    print()
    results = on_each_backend(
        lambda root: run_sqlite(root, options),
        lambda dsn, server, root: run_postgres(dsn, server, root, options),
        report,
        with_postgres=not args.no_postgres,
        with_sqlite=not args.no_sqlite,
    )
    postgres = [r for r in results if r.rebuild_goal]
    met = bool(postgres) and all(r.goal_met for r in results)
    backends = ", ".join(r.name for r in results)
    missing = "" if postgres else "; PostgreSQL was not measured, so the rebuild goal was not"
    print(
        f"goal met: {'yes' if met else 'no'} (rebuild / raw read >= {GOAL_RATIO} on PostgreSQL; "
        f"lag p99 < {GOAL_LAG_SECONDS:g} s on {backends}{missing})"
    )
    return 0


if __name__ == "__main__":
    stopping.run(main)
