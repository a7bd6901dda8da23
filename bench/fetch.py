"""Fetch benchmark: department fetches/s through the vault vs reading and decrypting the blob.

What is measured
----------------
For each backend — SQLite (the embedded default, in a temporary directory) and PostgreSQL
(DSN from ``CIVICVAULT_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``,
in a fresh ``bench_<random>`` schema given in the database URL and dropped at the end, even on
error; skipped with a note if unreachable) — the services are built by
``adapters.wiring.open_services`` with a generated master key and local blobs. Set-up, untimed:
one resident is registered, submits one 256 KiB document of random bytes (an ``id-card``) and
grants ``civil-affairs`` an unlimited consent for ``subsistence-allowance`` valid for 30 days;
``policies.current_version()`` is called once (publishing the default policy); then a few
warm-up fetches and reads.

a. fetch: ``fetches.fetch(officer=..., department="civil-affairs", ...)`` and then
   draining ``.content`` — the whole path a department's request takes: load the resident,
   the document and the resident's consents, decide (policy + consent), append and commit the
   consent's ``Used``, the document's ``Reused`` and the ``AccessAttempt``'s ``Recorded`` in one
   transaction, then unwrap the document key and read and decrypt the 256 KiB blob.
b. baseline, same run, same vault, same blob: ``documents.content(document)`` drained,
   with the ``Document`` aggregate loaded once beforehand — unwrap the key, read and decrypt,
   no loading, no checks, no events.

Both sides drain their content the same way (the chunks' lengths are summed; nothing is
kept). The fetch and baseline loops run interleaved in blocks, rotating which goes first, so
drift in disk or database latency hits both alike. Printed per backend: calls/s, p50/p99
latency, the ratio fetch / baseline, the events written per fetch (from
``events.head()`` before and after the timed fetches), and the fetch
rate of the first and the last block: every fetch appends an event to the same consent and
the same document, and with no snapshots each fetch replays them all, so a fetch gets slower
the more often that document was fetched under that consent. There is no numeric goal for the
ratio; the goal column says "(info)".

Run from the project root::

    .venv/bin/python -m bench.fetch            # 500 fetches per backend
    .venv/bin/python -m bench.fetch --quick    # 50: a smoke test, well under 30 s
    CIVICVAULT_TEST_POSTGRES_DSN=postgresql://user:pw@host:5432/db .venv/bin/python -m bench.fetch
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import UUID

from adapters.wiring import Core, Services
from bench import stopping
from bench.backends import on_each_backend, postgres_services, sqlite_services
from bench.tables import print_table
from vault.document import Document
from vault.inputs import ConsentRequest, DocumentDetails

KiB = 1024
DOCUMENT_BYTES = 256 * KiB
RESIDENT = "bench-resident-0001"
OFFICER = "officer-bench"
DEPARTMENT = "civil-affairs"
PURPOSE = "subsistence-allowance"
WARMUP = 5


@dataclass
class Timing:
    """Per-call latencies of one measured loop."""

    label: str
    latencies: list[float] = field(default_factory=list)

    def run(self, calls: Sequence[Callable[[], object]]) -> None:
        for call in calls:
            start = time.perf_counter()
            call()
            self.latencies.append(time.perf_counter() - start)

    @property
    def rate(self) -> float:
        return len(self.latencies) / sum(self.latencies)

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Measured:
    fetch: Timing
    baseline: Timing
    block: int
    events_written: int
    consent_events: int  # events in the consent's history at the end
    document_events: int  # events in the document's history at the end

    @property
    def ratio(self) -> float:
        return self.fetch.rate / self.baseline.rate

    @property
    def events_per_fetch(self) -> float:
        return self.events_written / len(self.fetch.latencies)

    def block_rate(self, index: int) -> float:
        blocks = [
            self.fetch.latencies[i : i + self.block]
            for i in range(0, len(self.fetch.latencies), self.block)
        ]
        chosen = blocks[index]
        return len(chosen) / sum(chosen)


@dataclass
class BackendResult:
    name: str
    notes: list[str]
    measured: Measured


# The measurement, shared by both backends


def drain(chunks: Iterable[bytes]) -> int:
    total = 0
    for chunk in chunks:
        total += len(chunk)
    return total


def set_up(vault: Core) -> tuple[Document, UUID]:
    """One resident, one 256 KiB document, one unlimited consent, the policy in force."""
    vault.residents.register(RESIDENT)
    document = vault.documents.submit(
        RESIDENT,
        io.BytesIO(os.urandom(DOCUMENT_BYTES)),
        DocumentDetails(doc_type="id-card", title="居民身份证 (bench)"),
    ).value
    now = datetime.now(UTC)
    granted = vault.consents.grant(
        RESIDENT,
        ConsentRequest(
            department=DEPARTMENT,
            doc_types=("id-card",),
            purpose=PURPOSE,
            valid_until=now + timedelta(days=30),
        ),
    )
    vault.policies.current_version()
    return document, granted.consent.id


def measure(vault: Core, n_fetches: int, block: int) -> Measured:
    document, consent_id = set_up(vault)

    def fetch() -> None:
        fetched = vault.fetches.fetch(
            officer=OFFICER,
            department=DEPARTMENT,
            resident_id=RESIDENT,
            document_id=document.id,
            purpose=PURPOSE,
        )
        if drain(fetched.content) != DOCUMENT_BYTES:
            raise RuntimeError("a fetch returned the wrong number of bytes")

    def read() -> None:
        if drain(vault.documents.content(document)) != DOCUMENT_BYTES:
            raise RuntimeError("a read returned the wrong number of bytes")

    for _ in range(WARMUP):
        fetch()
        read()

    fetches = Timing("fetches.fetch + drain content")
    baseline = Timing("baseline: documents.content + drain")
    events_before = vault.events.head()
    for n, start in enumerate(range(0, n_fetches, block)):
        size = min(block, n_fetches - start)
        pair = [(fetches, [fetch] * size), (baseline, [read] * size)]
        for timing, calls in pair if n % 2 == 0 else pair[::-1]:
            timing.run(calls)
    events_after = vault.events.head()

    consent: Any = vault.application.repository.get(consent_id)
    final: Any = vault.application.repository.get(document.id)
    return Measured(
        fetches,
        baseline,
        block,
        events_after - events_before,
        int(consent.version),
        int(final.version),
    )


def common_notes(services: Services, measured: Measured) -> list[str]:
    return [
        f"blobs in {services.settings.blob_dir}; document {DOCUMENT_BYTES // KiB} KiB",
        f"events written per fetch: {measured.events_per_fetch:.2f} "
        f"({measured.events_written:,} over {len(measured.fetch.latencies):,} timed fetches; "
        "consent Used, document Reused, access Recorded)",
        f"at the end the consent has {measured.consent_events:,} events and the document "
        f"{measured.document_events:,}; each fetch loads both in full (no snapshots)",
    ]


# SQLite


def run_sqlite(root: Path, n_fetches: int, block: int) -> BackendResult:
    with sqlite_services(root) as scratch:
        measured = measure(scratch.services, n_fetches, block)
        notes = [scratch.where, *common_notes(scratch.services, measured)]
    return BackendResult("SQLite", notes, measured)


# PostgreSQL


def run_postgres(dsn: str, server: str, root: Path, n_fetches: int, block: int) -> BackendResult:
    with postgres_services(dsn, server, root) as scratch:
        measured = measure(scratch.services, n_fetches, block)
        notes = [scratch.where, *common_notes(scratch.services, measured)]
    return BackendResult("PostgreSQL", notes, measured)


# Output


def report(result: BackendResult) -> None:
    m = result.measured
    print(f"== {result.name} ==")
    for note in result.notes:
        print(f"  {note}")
    print()
    print_table(
        ["measure", "calls", "seconds", "calls/s", "p50 ms", "p99 ms"],
        [
            [
                t.label,
                f"{len(t.latencies):,}",
                f"{sum(t.latencies):.3f}",
                f"{t.rate:,.0f}",
                f"{t.percentile_ms(0.5):.3f}",
                f"{t.percentile_ms(0.99):.3f}",
            ]
            for t in (m.fetch, m.baseline)
        ],
    )
    print()
    print_table(
        ["fetch vs baseline", "fetches/s", "baseline reads/s", "ratio", "goal", "met"],
        [
            [
                f"fetch, {DOCUMENT_BYTES // KiB} KiB document",
                f"{m.fetch.rate:,.0f}",
                f"{m.baseline.rate:,.0f}",
                f"{m.ratio:.2f}",
                "(info)",
                "-",
            ]
        ],
    )
    print(
        f"  fetches/s in the first block of {m.block}: {m.block_rate(0):,.0f}; "
        f"in the last: {m.block_rate(-1):,.0f}"
    )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run for a smoke test")
    parser.add_argument("--fetches", type=int, help="timed fetches per backend")
    parser.add_argument("--block", type=int, help="calls per interleaved block")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    n_fetches: int = args.fetches or (50 if args.quick else 500)
    block: int = args.block or (10 if args.quick else 50)

    print(
        f"civicvault fetch benchmark — eventsourcing {version('eventsourcing')}, "
        f"{n_fetches} fetches of a {DOCUMENT_BYTES // KiB} KiB document per backend, "
        f"fetch and baseline interleaved in blocks of {block}{' (quick)' if args.quick else ''}"
    )
    print()
    results = on_each_backend(
        lambda root: run_sqlite(root, n_fetches, block),
        lambda dsn, server, root: run_postgres(dsn, server, root, n_fetches, block),
        report,
        with_postgres=not args.no_postgres,
    )
    backends = ", ".join(r.name for r in results)
    print(
        f"goal met: n/a (no numeric goal is set for fetch / baseline; the figures for {backends} "
        "are for information)"
    )
    return 0


if __name__ == "__main__":
    stopping.run(main)
