"""Re-adjudication benchmark: access events decided again per second over a realistic log.

What is measured
----------------
For each backend — SQLite (the embedded default, in a temporary directory) and PostgreSQL
(DSN from ``CIVICVAULT_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``,
in a fresh ``bench_<random>`` schema given in the database URL and dropped at the end, even on
error; skipped with a note if unreachable) — the services are built by
``adapters.wiring.open_services`` with a generated master key and local blobs, every other
setting at its default.

Fill, untimed (its time is printed): the realistic log of ``bench/projections.py`` — its
``Filler``, imported: residents register, most get a sealed credit grade, file sealed
documents and grant consents; departments fetch, each fetch judged and recorded by
``vault.judgement.record_fetch`` on the aggregates in memory against the default policy, as
``fetches.fetch`` does; now and then a consent is revoked or a document
withdrawn — up to N events (default 1,000,000, about 370,000 of them access events;
``--quick`` 20,000; ``--events``). An allowed fetch's events are written in the order
``record_fetch`` gives them, ``AccessAttempt.Recorded`` then ``Consent.Used`` and
``Document.Reused`` (folded in another order, a consent's last allowed use would be judged
on the consent already used up). An untimed pass over the log counts the notifications,
warms the page cache and checks that order: every ``Consent.Used`` directly follows an
``AccessAttempt.Recorded``.

Timed, each once, in this order, paging as re-adjudication pages
(``vault.services.audit.READJUDICATION_PAGE``):

a. raw read, for information: ``application.recorder.select_notifications`` through every
   notification, and nothing else;
b. raw read + decode, the baseline: the same, plus ``application.mapper.to_domain_events`` on
   each page (the page's resident keys read in one query, personal fields decrypted);
c. ``audit.readjudicate()`` over the whole log (no window): the same read; every resident,
   document and consent event folded into its aggregate (``Consent.Used`` and
   ``Document.Reused``, which only count, by their version without being decoded; access
   events decoded with their sealed fields left closed), and every
   ``AccessAttempt.Recorded`` judged again with ``judge_fetch`` on the state just before it
   and the decision point of the policy version it names. The CPU time of its thread is
   printed beside its wall time.

Printed: access events re-decided/s (access events checked / seconds), all events/s, the
baseline's events/s and the ratio readjudicate / baseline (events/s, for information), and
the goal: >= 20,000 access events re-decided per second, on each backend. The fill judged
every fetch as the app does, so re-adjudication must find no mismatch: a mismatch (the first
few are printed), an access event not checked, or the order check failing makes the exit
status 1; a goal not met is reported, not an error.

Run from the project root::

    .venv/bin/python -m bench.readjudicate                 # 1,000,000 events
    .venv/bin/python -m bench.readjudicate --quick         # 20,000 events: a smoke test
    .venv/bin/python -m bench.readjudicate --events 200000 --no-postgres
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from eventsourcing.utils import get_topic

from adapters.wiring import Core, Services
from bench import stopping
from bench.backends import on_each_backend, postgres_services, sqlite_services
from bench.projections import EVENTS_PER_RESIDENT, SEED, Fill, Filler, read_log, timed
from bench.tables import print_table
from vault.access import AccessAttempt
from vault.consent import USED_TOPIC
from vault.services.audit import READJUDICATION_PAGE, Readjudication

GOAL_RATE = 20_000  # access events re-decided per second
SHOWN_MISMATCHES = 5
ACCESS = get_topic(AccessAttempt.Recorded)


def uses_out_of_order(vault: Core) -> tuple[int, int]:
    """(notifications, ``Consent.Used`` events not directly after an access event)."""
    previous = ""
    out_of_order = 0

    def check(notifications: Any) -> None:
        nonlocal previous, out_of_order
        for notification in notifications:
            if notification.topic == USED_TOPIC and previous != ACCESS:
                out_of_order += 1
            previous = notification.topic

    return read_log(vault, READJUDICATION_PAGE, check), out_of_order


@dataclass
class Measured:
    notifications: int
    out_of_order: int
    raw_seconds: float
    decoded_seconds: float
    seconds: float
    cpu_seconds: float
    found: Readjudication

    @property
    def decoded_rate(self) -> float:
        return self.notifications / self.decoded_seconds

    @property
    def rate(self) -> float:
        return self.found.events / self.seconds

    @property
    def access_rate(self) -> float:
        return self.found.checked / self.seconds


def measure_readjudication(vault: Core) -> Measured:
    notifications, out_of_order = uses_out_of_order(vault)  # also the warm-up
    raw = timed(lambda: read_log(vault, READJUDICATION_PAGE))
    decoded = timed(
        lambda: read_log(vault, READJUDICATION_PAGE, vault.application.mapper.to_domain_events)
    )
    found = Readjudication()

    def readjudicate() -> None:
        nonlocal found
        found = vault.audit.readjudicate()

    cpu = time.thread_time()
    seconds = timed(readjudicate)
    cpu = time.thread_time() - cpu
    return Measured(notifications, out_of_order, raw, decoded, seconds, cpu, found)


# Per backend


@dataclass
class BackendResult:
    name: str
    notes: list[str]
    fill: Fill
    measured: Measured

    @property
    def accesses(self) -> int:
        """Access events in the log (the fill's; the policy publication adds none)."""
        return self.fill.by_type["AccessAttempt.Recorded"]

    @property
    def sound(self) -> bool:
        """Whether every access event was checked and bore out its record."""
        m = self.measured
        return (
            not m.found.mismatches
            and m.found.checked == self.accesses
            and m.found.events == m.notifications
            and m.out_of_order == 0
        )

    @property
    def goal_met(self) -> bool:
        return self.sound and self.measured.access_rate >= GOAL_RATE


def measure(services: Services, name: str, events: int, residents: int) -> BackendResult:
    services.policies.current_version()
    print(f"{name}: filling {events:,} events ...", flush=True)
    fill = Filler(services, residents, SEED).run(events)
    print(f"{name}: filled in {fill.seconds:.1f} s; re-adjudicating ...", flush=True)
    measured = measure_readjudication(services)
    print(flush=True)
    fetches = fill.allowed + fill.denied
    notes = [
        f"blobs in {services.settings.blob_dir}",
        f"fill (untimed): {fill.events:,} events in {fill.seconds:.1f} s "
        f"({fill.events / fill.seconds:,.0f} events/s), {fill.residents:,} residents, "
        f"{fill.documents:,} documents, {fill.consents:,} consents; {fetches:,} fetches: "
        f"{fill.allowed:,} allowed, {fill.denied:,} denied ({fill.denied / max(1, fetches):.1%}); "
        f"the log holds {measured.notifications:,} notifications (policy publication included)",
    ]
    return BackendResult(name, notes, fill, measured)


def run_sqlite(root: Path, events: int, residents: int) -> BackendResult:
    with sqlite_services(root) as scratch:
        result = measure(scratch.services, "SQLite", events, residents)
    result.notes.insert(0, scratch.where)
    return result


def run_postgres(dsn: str, server: str, root: Path, events: int, residents: int) -> BackendResult:
    with postgres_services(dsn, server, root) as scratch:
        result = measure(scratch.services, "PostgreSQL", events, residents)
    result.notes.insert(0, scratch.where)
    return result


# Output


def report(result: BackendResult) -> None:
    m, found = result.measured, result.measured.found
    print(f"== {result.name} ==")
    for note in result.notes:
        print(f"  {note}")
    print()
    page = f"pages of {READJUDICATION_PAGE:,}"
    print_table(
        ["read / re-adjudicate the log", "events", "seconds", "events/s", "access/s"],
        [
            [f"raw read: select_notifications, {page} (info)", f"{m.notifications:,}",
             f"{m.raw_seconds:.2f}", f"{m.notifications / m.raw_seconds:,.0f}", "-"],
            [f"raw read + mapper.to_domain_events, {page} (baseline)", f"{m.notifications:,}",
             f"{m.decoded_seconds:.2f}", f"{m.decoded_rate:,.0f}", "-"],
            ["audit.readjudicate()", f"{found.events:,}", f"{m.seconds:.2f}", f"{m.rate:,.0f}",
             f"{m.access_rate:,.0f}"],
        ],
    )
    print(
        f"  readjudicate's thread used {m.cpu_seconds:.2f} s of CPU in its {m.seconds:.2f} s "
        f"({m.cpu_seconds / m.seconds:.0%})"
    )
    print(
        f"  access events re-decided: {found.checked:,} (the log holds {result.accesses:,}); "
        f"unverifiable (erased): {found.unverifiable:,}; mismatches: {len(found.mismatches):,}; "
        f"Consent.Used not directly after its access event: {m.out_of_order:,}"
    )
    for mismatch in found.mismatches[:SHOWN_MISMATCHES]:
        print(
            f"    event {mismatch.event:,}: recorded allowed={mismatch.recorded_allowed} "
            f"{list(mismatch.recorded_reasons)}, decided allowed={mismatch.decided_allowed} "
            f"{list(mismatch.decided_reasons)} ({mismatch.department}, {mismatch.purpose})"
        )
    print()
    print_table(
        ["goal", "measured", "baseline", "ratio", "goal", "met"],
        [
            ["access events re-decided/s", f"{m.access_rate:,.0f}", "-", "-",
             f">= {GOAL_RATE:,}", "yes" if result.goal_met else "NOT met"],
            ["readjudicate vs raw read + decode (events/s)", f"{m.rate:,.0f}",
             f"{m.decoded_rate:,.0f}", f"{m.rate / m.decoded_rate:.2f}", "(info)", "-"],
        ],
    )
    print(f"goal met ({result.name}): {'yes' if result.goal_met else 'NOT met'}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run for a smoke test")
    parser.add_argument("--events", type=int, help="events in the store before re-adjudicating")
    parser.add_argument("--residents", type=int, help="residents in the fill")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    events: int = args.events or (20_000 if args.quick else 1_000_000)
    residents: int = args.residents or max(20, events // EVENTS_PER_RESIDENT)

    print(
        f"civicvault re-adjudication benchmark — eventsourcing {version('eventsourcing')}, "
        f"{events:,} events from {residents:,} residents per backend, every access event "
        f"decided again{' (quick)' if args.quick else ''}"
    )
    print()
    results = on_each_backend(
        lambda root: run_sqlite(root, events, residents),
        lambda dsn, server, root: run_postgres(dsn, server, root, events, residents),
        report,
        with_postgres=not args.no_postgres,
    )
    met = all(r.goal_met for r in results)
    backends = ", ".join(r.name for r in results)
    print(
        f"goal met: {'yes' if met else 'no'} (>= {GOAL_RATE:,} access events re-decided per "
        f"second on {backends})"
    )
    if not all(r.sound for r in results):
        print(
            "ERROR: re-adjudication did not bear out the log the fill judged (see the "
            "mismatches and counts above)"
        )
        return 1
    return 0


if __name__ == "__main__":
    stopping.run(main)
