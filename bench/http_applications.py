"""HTTP applications benchmark: applications accepted and decided per second over HTTP, driven
by wrk, beside audited fetches from the same server in the same run.

What is measured
----------------
Set-up, untimed, in a temporary data directory: ``adapters.wiring.open_services`` with a
generated master key and local blobs, on the embedded default (``--backend sqlite``) or on
PostgreSQL (``--backend postgres``: ``$CIVICVAULT_TEST_POSTGRES_DSN``, default
``postgresql://postgres@127.0.0.1:5432/test``, in a fresh ``bench_<random>`` schema dropped at
the end, even on error). R residents (``--residents``, default 1,000) are seeded as
``bench.applications`` seeds them (``bench.applications.seed``: an ``id-card``, a
``household-register``, an ``income-proof`` and a ``disability-cert`` of 1 KiB each saying what
forms are filled from, the certificate verified, a consent for ``civil-affairs`` to read the
``id-card`` for ``elderly-card``, grade A); the default policy is published; bearer tokens are
signed for every resident and for one ``civil-affairs`` officer (``keys.tokens.issue_token``,
two hours). The services are closed before the server starts.

The server: ``civicvault serve``'s factory (``adapters.http.app:app_from_environment``) on that
data directory and database, in its own process (``bench.http_fetch``'s ``--serve ours``:
``uvicorn.run(..., workers=N)`` as ``civicvault serve --workers N`` calls it), every setting at
its default but the per-principal limits on fetches and writes, lifted: one officer's token
makes every decision. Before any load, one application is made and decided and one fetch made
with httpx (untimed; httpx never makes the load), each checked.

Load: ``wrk`` (Debian's package; without it the bench says how to install it and exits 2),
2 threads (1 for one connection), keep-alive connections. Two loads, each a warm-up run
(2 s, ``--quick`` 1 s) then a timed run (10 s, ``--quick`` 3 s), the order alternating by row:

a. applications (``bench/http_applications.lua``): residents in turn ``POST
   /v1/me/applications {"service_id": "subsistence-allowance"}`` — online, its three
   materials (id-card, household-register, income-proof) taken from the library, a consent
   with its signed receipt for 民政局, the form filled in, the route waiting for the read
   models as it does for every acceptance — and, as soon as a connection of the thread that
   saw it accepted is free, the officer approves it (``POST /v1/applications/{id}/decisions``;
   the service has one step, so the approval closes it and issues its notice, sealed into a
   blob, into the resident's library, in one transaction with the decision). A steady mix:
   one acceptance and one decision per application. **Applications/s = applications decided
   per second of wrk's run**; acceptances/s beside it.
b. the baseline: audited fetches of each resident's 1 KiB ``id-card`` in turn (``GET
   /v1/residents/{rid}/documents/{id}/content?purpose=elderly-card`` with the officer's
   token, ``bench/http_fetch.lua``): judged, three events committed, decrypted, sent.

The size of history (issue 18, item 4: "measured the same way" as the fetch at 1,000 and at
1,000,000 residents over a 10,000,000-event log): with ``--history N`` a second store, "large",
is set up beside the first, "small", and measured the same way in the same run. Its log first
holds N events of ``--history-residents`` (default N / 10) other residents, written by
``bench.projections.Filler`` as ``bench.scale`` runs it (registrations with data keys and
grades, documents sealed into real blobs, consents, judged fetches; progress on stderr, the
fill's objects kept out of the garbage collector's passes until it is over); then the same R
residents are seeded into it, the read models and the ledger catch up on all of it, and on
PostgreSQL every table of the store is analyzed, before its server starts. Both servers run at
once; each row measures each store in turn, the order alternating. A last table gives each rate
with the history ÷ the small store's, beside the goal ≥ 0.8 (within 20%). The residents who
apply are the seeded ones on both stores: it measures what a long log costs an application, not
a cold cache (``bench.scale`` draws its fetches over all the residents).

Rows: 64 connections over all the residents, and 1 connection (latency). Printed per row:
fetches/s and applications/s with wrk's p50/p99 latency (for applications, acceptances and
decisions alike), the ratio applications/s ÷ fetches/s (how many fetches' worth of work one
application, accepted and decided, is), and the server's CPU milliseconds per fetch and per
application. Every response must be the right one (201 with an application id, 200; for the
fetch, a 200 of 1 KiB), and there must be no socket error, or the exit status is 1. There is
no goal for one store: the figures are for information (issue 18, item 4).

Run from the project root::

    .venv/bin/python -m bench.http_applications                                  # SQLite, 1 worker
    .venv/bin/python -m bench.http_applications --backend postgres --workers 2
    .venv/bin/python -m bench.http_applications --quick                          # 64 residents
    .venv/bin/python -m bench.http_applications --backend postgres --workers 2 --history 10000000
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import httpx
from pydantic import SecretStr

from adapters.progress import Progress
from adapters.settings import Settings
from adapters.wiring import Services, open_services
from bench import stopping
from bench.applications import BASELINE_PURPOSE, DEPARTMENT, DOCUMENT_BYTES, seed
from bench.http_fetch import (
    AUTHORIZATION_ENV,
    INSTALL_WRK,
    LUA_SCRIPT,
    WRK_THREADS,
    WrkRun,
    cpu_model,
    load_average,
    run_wrk,
    serve_command,
    wrk_version,
)
from bench.postgres import drop_schema, postgres_reachable, redact, test_dsn, with_schema
from bench.scale import ShownFiller, thaw
from bench.servers import Server, running, server_env
from bench.tables import print_table
from keys.master import MasterKey
from keys.tokens import Role, issue_token

SERVICE = "subsistence-allowance"
OFFICER = "officer-li"
OFFICER_ENV = "BENCH_HTTP_APPLICATIONS_OFFICER"  # read by the Lua script
SCRIPT = Path(__file__).with_suffix(".lua")
FETCH_ROUTE = "/v1/residents/{resident}/documents/{document}/content?purpose={purpose}"
ROWS = ((64, "64 connections, many residents"), (1, "1 connection"))
TOKEN_LIFETIME = timedelta(hours=2)
HISTORY_SEED = 18
SCALE_GOAL = 0.8  # issue 18: the rate with the history within 20% of the small store's
UNLIMITED = "100000000/minute"


@dataclass(frozen=True)
class Fixture:
    name: str  # "small", or "large" with the history
    data_dir: Path
    master_key: str
    database_url: str | None
    officer_token: str
    resident_tokens: Path  # one per line, for the Lua script
    fetch_paths: Path  # one resident's id-card per line
    first_resident_token: str


def set_up(
    root: Path, name: str, residents: int, database_url: str | None, history: int,
    history_residents: int,
) -> Fixture:
    """The residents seeded as bench.applications seeds them — after ``history`` events of
    ``history_residents`` others written by bench.projections' filler, if any — the read
    models and the ledger caught up; their tokens and the officer's."""
    data_dir = root / name
    master_key = MasterKey.generate().to_base64()
    settings = Settings(
        data_dir=data_dir, master_key=SecretStr(master_key), database_url=database_url,
        s3_endpoint=None,
    )
    services = open_services(settings)
    try:
        if history:
            progress = Progress(f"{name}: history, events", stream=sys.stderr, total=history)
            fill = ShownFiller(services, history_residents, HISTORY_SEED, progress).run(history)
            progress.done()
            thaw()
            print(f"  {name}: history of {fill.events:,} events ({fill.residents:,} residents, "
                  f"{fill.documents:,} documents, {fill.consents:,} consents, "
                  f"{fill.allowed + fill.denied:,} fetches) written in {fill.seconds:.0f} s "
                  f"({fill.events / fill.seconds:,.0f} events/s)", flush=True)
        now = datetime.now(UTC)
        names = [f"bench-resident-{n:05d}" for n in range(residents)]
        started = time.perf_counter()
        cards = seed(services, names, now + timedelta(days=1), f"{name}: set-up")
        services.ledger.catch_up()
        analyze_every_table(services)
        print(f"  {name}: {residents:,} residents seeded, read models and ledger caught up on "
              f"{services.events.head():,} events in {time.perf_counter() - started:.0f} s",
              flush=True)
        services.policies.current_version()
        key = services.signing.current("tokens")

        def token(role: Role, subject: str, department: str | None = None) -> str:
            return issue_token(
                key, role=role, subject=subject, department=department, ttl=TOKEN_LIFETIME,
                issuer=settings.token_issuer, audience=settings.token_audience, now=now,
            )

        resident_tokens = [token("resident", name) for name in names]
        officer_token = token("officer", OFFICER, DEPARTMENT)
    finally:
        services.close()
    tokens_file = root / f"{name}-residents.txt"
    tokens_file.write_text("".join(f"{t}\n" for t in resident_tokens))
    paths_file = root / f"{name}-fetches.txt"
    paths_file.write_text("".join(
        FETCH_ROUTE.format(resident=r, document=d, purpose=BASELINE_PURPOSE) + "\n"
        for r, d in cards.items()
    ))
    return Fixture(name, data_dir, master_key, database_url, officer_token, tokens_file,
                   paths_file, resident_tokens[0])


def analyze_every_table(services: Services) -> None:
    """On PostgreSQL, the statistics of every table of the store's schema (the log, the
    read models, the ledger, the keys) gathered, as autovacuum would after a load; the
    test server runs without it, and a planner without statistics may scan a whole table
    of the history for a row."""
    db = services.database
    if db.sqlite:
        return
    with db.transaction() as run:
        names = run("SELECT tablename FROM pg_tables WHERE schemaname = ?",
                    (db.datastore.schema,))
        for (table,) in names:
            run(f"ANALYZE {db.table(table)}")


def server_environment(fixture: Fixture) -> dict[str, str]:
    env = {
        "CIVICVAULT_DATA_DIR": str(fixture.data_dir),
        "CIVICVAULT_MASTER_KEY": fixture.master_key,
        # One officer's token drives the fetches and makes every decision: its limits are
        # lifted (the bench measures throughput; the limiter's own cost stays in).
        "CIVICVAULT_RATE_LIMIT_FETCHES": UNLIMITED,
        "CIVICVAULT_RATE_LIMIT_WRITES": UNLIMITED,
    }
    if fixture.database_url:
        env["CIVICVAULT_DATABASE_URL"] = fixture.database_url
    return server_env(env)


def check(server: Server, fixture: Fixture) -> None:
    """One application made and decided, one fetch: each the right answer, or stop here."""
    officer = {"Authorization": f"Bearer {fixture.officer_token}"}
    resident = {"Authorization": f"Bearer {fixture.first_resident_token}"}
    with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
        made = client.post("/v1/me/applications", json={"service_id": SERVICE},
                           headers=resident)
        if made.status_code != 201:
            raise RuntimeError(f"applying answered {made.status_code}: {made.text[:300]}")
        application = made.json()["application_id"]
        decided = client.post(f"/v1/applications/{application}/decisions",
                              json={"decision": "approve", "reason": "符合条件"},
                              headers=officer)
        if decided.status_code != 200 or decided.json()["status"] != "approved":
            raise RuntimeError(f"deciding answered {decided.status_code}: "
                               f"{decided.text[:300]}")
        path = fixture.fetch_paths.read_text().splitlines()[0]
        fetched = client.get(path, headers=officer)
        if fetched.status_code != 200 or len(fetched.content) != DOCUMENT_BYTES:
            raise RuntimeError(f"fetching answered {fetched.status_code}: "
                               f"{fetched.text[:300]}")


@dataclass(frozen=True)
class Measured:
    run: WrkRun
    failed: int  # wrong answers and socket errors, warm-up included


def applications_failed(run: WrkRun) -> int:
    """Responses that were neither an acceptance nor a decision, plus socket errors."""
    return run.responses - run.ok - run.accepted + sum(run.socket_errors.values())


def measure_load(
    wrk: str, server: Server, fixture: Fixture, kind: str, connections: int, warmup: int,
    duration: int,
) -> Measured:
    if kind == "applications":
        env = {**server_env({}), OFFICER_ENV: fixture.officer_token}
        script, argument, source = SCRIPT, SERVICE, fixture.resident_tokens
    else:
        env = {**server_env({}), AUTHORIZATION_ENV: f"Bearer {fixture.officer_token}"}
        script, argument, source = LUA_SCRIPT, str(DOCUMENT_BYTES), fixture.fetch_paths

    def once(seconds: int) -> tuple[WrkRun, int]:
        run = run_wrk(wrk, server, source, connections, seconds, env, script=script,
                      argument=argument)
        return run, applications_failed(run) if kind == "applications" else run.failed

    failed = once(warmup)[1] if warmup else 0
    run, timed_failed = once(duration)
    failed += timed_failed
    print(f"  {fixture.name}, {connections} connection{'s' if connections > 1 else ''}, {kind}: "
          f"{run.rate:,.1f}/s, p50 {run.p_ms('p50'):.2f} ms"
          + (f", {failed} failed ({run.failures()})" if failed else ""), flush=True)
    return Measured(run, failed)


@dataclass(frozen=True)
class RowResult:
    store: str
    name: str
    order: str
    fetches: Measured
    applications: Measured

    @property
    def ratio(self) -> float:
        fetch_rate = self.fetches.run.rate
        return self.applications.run.rate / fetch_rate if fetch_rate else 0.0


def report(results: list[RowResult]) -> bool:
    header = ["store", "load (order)", "fetches/s", "p50 / p99 ms", "applications/s",
              "accepted/s", "p50 / p99 ms", "ratio", "server CPU ms: fetch / application"]
    rows = []
    clean = True
    for result in results:
        f, a = result.fetches.run, result.applications.run
        clean = clean and result.fetches.failed == result.applications.failed == 0
        rows.append([
            result.store, f"{result.name} ({result.order})", f"{f.rate:,.1f}",
            f"{f.p_ms('p50'):.2f} / {f.p_ms('p99'):.2f}", f"{a.rate:,.1f}",
            f"{a.accepted / a.seconds:,.1f}", f"{a.p_ms('p50'):.2f} / {a.p_ms('p99'):.2f}",
            f"{result.ratio:.3f}", f"{f.cpu_ms(f.server_cpu):.2f} / {a.cpu_ms(a.server_cpu):.2f}",
        ])
    print_table(header, rows)
    for result in results:
        line = f"{result.store}, {result.name}"
        fetched, applied = result.fetches, result.applications
        print(f"  {line}: one application (accepted and decided) costs as much as "
              f"{1 / result.ratio:.1f} fetches" if result.ratio else f"  {line}: no ratio")
        if fetched.failed or applied.failed:
            print(f"  {line}: FAILED — fetches: {fetched.failed} "
                  f"({fetched.run.failures() or '-'}); applications: {applied.failed} "
                  f"({applied.run.failures() or '-'})")
    report_scale(results)
    print(f"answers: {'all right' if clean else 'SOME WRONG (exit status 1)'}")
    return clean


def report_scale(results: list[RowResult]) -> None:
    """With a history: each rate on the large store against the small one's, same row."""
    small = {r.name: r for r in results if r.store == "small"}
    large = [r for r in results if r.store == "large"]
    if not large:
        return
    print()
    rows = []
    for result in large:
        base = small[result.name]
        for kind, ours, theirs in (
            ("applications/s", result.applications.run.rate, base.applications.run.rate),
            ("fetches/s", result.fetches.run.rate, base.fetches.run.rate),
        ):
            ratio = ours / theirs if theirs else 0.0
            rows.append([result.name, kind, f"{theirs:,.1f}", f"{ours:,.1f}", f"{ratio:.2f}",
                         f">= {SCALE_GOAL}", "yes" if ratio >= SCALE_GOAL else "no"])
    print_table(["load", "rate", "small store", "with the history", "ratio", "goal", "met"],
                rows)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1)")
    parser.add_argument("--residents", type=int, help="residents (default 1,000; quick 64)")
    parser.add_argument(
        "--history", type=int, default=0,
        help="also measure a second store whose log first holds this many events of other "
        "residents (bench.projections' fill), against the first (default 0: no second store)",
    )
    parser.add_argument(
        "--history-residents", type=int,
        help="residents in that history (default: one per 10 events)",
    )
    parser.add_argument("--quick", action="store_true", help="64 residents, 1 s + 3 s runs")
    parser.add_argument("--duration", type=int, help="timed seconds per load and row")
    parser.add_argument("--warmup", type=int, help="untimed seconds before each timed run")
    args = parser.parse_args(argv)
    args.residents = args.residents or (64 if args.quick else 1000)
    args.history_residents = args.history_residents or max(1, args.history // 10)
    if args.residents < ROWS[0][0] or args.workers < 1 or args.history < 0:
        parser.error(f"--residents must be at least {ROWS[0][0]}, --workers at least 1, "
                     "--history at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed; this bench measures with it and nothing else. "
              f"Install it with: {INSTALL_WRK}", file=sys.stderr)
        return 2
    duration: int = args.duration or (3 if args.quick else 10)
    warmup: int = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    stores = [("small", 0)] + ([("large", args.history)] if args.history else [])
    with ExitStack() as stack:
        urls: dict[str, str | None] = {name: None for name, _ in stores}
        if args.backend == "postgres":
            dsn = test_dsn()
            server_version = postgres_reachable(dsn)
            if server_version is None:
                return 2
            for name, _ in stores:
                schema = f"bench_{secrets.token_hex(4)}"
                stack.callback(drop_schema, dsn, schema)
                urls[name] = with_schema(dsn, schema)
            where = f"PostgreSQL {server_version} at {redact(dsn)}, a schema each (dropped)"
        else:
            where = f"SQLite {sqlite3.sqlite_version}, a file each in a temporary directory"
        command = [os.path.relpath(sys.executable), "-m", "bench.http_applications",
                   *sys.argv[1:]]
        print(f"civicvault HTTP applications benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(f"command: {shlex.join(command)}")
        print(f"machine: {os.cpu_count()} cores ({cpu_model()}), {platform.platform()}; "
              f"load average {load_average()} at the start")
        print(f"versions: Python {platform.python_version()}, eventsourcing "
              f"{version('eventsourcing')}, fastapi {version('fastapi')}, wrk {wrk_version(wrk)}")
        history = (f"; the large store's log first holds {args.history:,} events of "
                   f"{args.history_residents:,} other residents" if args.history else "")
        print(f"stores: {where}; blobs in a temporary directory; {args.workers} uvicorn "
              f"worker{'' if args.workers == 1 else 's'} each{history}")
        print(f"load: wrk, {WRK_THREADS} threads (1 at one connection), {warmup} s warm-up + "
              f"{duration} s timed per load, row and store; {args.residents} residents apply; "
              f"applications for {SERVICE}, each decided by {DEPARTMENT}; fetches of 1 KiB "
              "id-cards")
        print()
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="civicvault-bench-")))
        fixtures = [
            set_up(root, name, args.residents, urls[name], events, args.history_residents)
            for name, events in stores
        ]
        servers = [
            (fixture, stack.enter_context(running(
                fixture.name, serve_command("ours", args.workers), args.workers,
                server_environment(fixture), "/healthz", root / f"{fixture.name}.log",
            )))
            for fixture in fixtures
        ]
        for fixture, server in servers:
            check(server, fixture)
        results: list[RowResult] = []
        for n, (connections, name) in enumerate(ROWS):
            kinds = ("applications", "fetches") if n % 2 == 0 else ("fetches", "applications")
            for fixture, server in servers if n % 2 == 0 else servers[::-1]:
                measured = {
                    kind: measure_load(wrk, server, fixture, kind, connections, warmup,
                                       duration)
                    for kind in kinds
                }
                results.append(RowResult(fixture.name, name, ", ".join(kinds),
                                         measured["fetches"], measured["applications"]))
        for _, server in servers:
            if server.exited():
                print(f"  the {server.name} server exited early:\n{server.log_tail()}")
            elif any(r.store == server.name and (r.fetches.failed or r.applications.failed)
                     for r in results):
                print(f"  the {server.name} server's log ends:\n{server.log_tail(40)}")
        print()
        clean = report(results)
        print(f"load average {load_average()} at the end")
    return 0 if clean else 1

if __name__ == "__main__":
    stopping.run(main)
