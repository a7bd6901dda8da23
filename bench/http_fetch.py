"""HTTP fetch benchmark: authorized 256 KiB fetches/s over HTTP, driven by wrk, vs a bare route.

What is measured
----------------
Set-up, untimed, in a temporary data directory: ``adapters.wiring.open_services`` with a
generated master key and local blobs, on the embedded default (``--backend sqlite``, an SQLite
file in that directory) or on PostgreSQL (``--backend postgres``: the server at
``$CIVICVAULT_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``, in a
fresh ``bench_<random>`` schema given in the database URL and dropped at the end, even on
error); every other ``CIVICVAULT_*`` setting at its default. 256 residents (``--residents``)
are registered and each submits one 256 KiB document of random bytes (an ``id-card``,
``application/pdf``) and grants ``civil-affairs`` an unlimited consent for
``subsistence-allowance`` valid for one day; the default policy is published
(``policies.current_version()``); one officer token is signed with
``keys.tokens.issue_token`` (officer ``officer-li``, department ``civil-affairs``, one hour).
The services are closed before any server starts.

Two servers, each in its own process (this module re-run with the hidden ``--serve`` option),
both started with the same settings by ``uvicorn.run("<module>:<factory>", factory=True,
workers=N, host="127.0.0.1", port=<free port>, **SERVER_OPTIONS)`` — the call ``civicvault
serve --workers N`` makes (httptools with civicvault's bound on the header block, no access
log of uvicorn's); N is ``--workers`` (default 1; with 1, uvicorn serves in that process itself,
as ``civicvault serve`` does; with more, a supervisor process and N spawned workers sharing the
listening socket); uvicorn's default loop (uvloop when installed):

a. ours: the factory ``adapters.http.app:app_from_environment`` (``create_app(open_services(
   Settings()))``, one per worker) on the same data directory and database (the same
   ``CIVICVAULT_DATA_DIR``, ``CIVICVAULT_MASTER_KEY`` and ``CIVICVAULT_DATABASE_URL``, and the
   per-officer fetch limit lifted by ``CIVICVAULT_RATE_LIMIT_FETCHES``: one token drives the
   whole load), serving ``GET /v1/residents/{rid}/documents/{id}/content?purpose=subsistence-
   allowance`` with the bearer token: middleware (request id, metrics, one JSON log line per
   request — to a file in the temporary directory), token check, policy + consent decision,
   the consent's ``Used``, the document's ``Reused`` and the ``AccessAttempt``'s ``Recorded``
   committed in one transaction (group-committed), the in-process follower, then key unwrap,
   blob read and decryption, sent.
b. bare, the baseline: the factory ``bench.http_fetch:bare_app``, a FastAPI app with one
   ``async`` GET route on the same path pattern (``/v1/residents/{resident}/documents/
   {document}/content``) returning ``Response(content=<the first resident's 256 KiB, read once
   per worker and held in memory>, media_type="application/pdf")`` whatever the path names.

Each server must answer (``GET /healthz`` for ours, the first document's path for bare) and,
with several workers, every worker must have accepted a probe connection (checked with
psutil) before it is measured; both are stopped by their pids at the end (``bench.servers``).
Before any load, every resident's document is fetched once from ours with httpx and its bytes
compared with what was submitted, and the bare route's bytes likewise (untimed; httpx never
makes the load).

Load: ``wrk`` (``/usr/bin/wrk``, Debian's package; without it the bench says how to install it
and exits 2 — there is no fallback to a Python client), 2 threads (1 for one connection),
keep-alive connections, a 60 s time-out, and the script ``bench/http_fetch.lua``: the requests
are formatted once, each with the ``Authorization: Bearer <token>`` header (sent to bare too,
which ignores it: both servers get the same bytes), and each thread walks the list of paths
from its own evenly spaced starting point, so concurrent requests ask for different
residents; every response is counted by status, and a 200 counts only if its body is 256 KiB.
Rows:

1. 64 connections over many residents (the ratio goal): each request the next resident's
   document under that resident's consent, round robin over all of them;
2. 1 connection, the same walk (the latency goal);
3. 64 connections on one document, the first resident's, under the same consent (information).

For each row, both servers in turn, the order alternating (ours first in rows 1 and 3, bare
first in row 2): a warm-up wrk run (2 s, ``--quick`` 1 s), then a timed wrk run (10 s,
``--quick`` 3 s). Printed per row and server: requests/s (200s of the right length, per second
of wrk's run), p50 and p99 latency (wrk's histogram: from writing a request to its response's
last byte), responses that were not a 200 of the right length and wrk's socket errors (connect,
read, write, time-out; warm-up included) — for ours they must be 0, or the bench exits 1 —, the
ratio ours/bare of requests/s, and the CPU time per counted request of the server's process
tree (psutil before and after the timed run: supervisor and workers, reaped children included)
and of wrk (``getrusage(RUSAGE_CHILDREN)`` before and after wrk is reaped, the only child
reaped meanwhile): client and server share the machine's cores. With several workers, the
connections each worker held one second into the timed run are printed (psutil).

Goals (issue 18, part 3): on SQLite with one worker, ours >= 0.3 x bare at 64 connections over
many residents and ours' p50 <= 1 ms at one connection; on PostgreSQL with two workers, ours
>= 0.2 x bare at 64 connections over many residents. The bench prints whether they are met;
other configurations print the figures without a goal.

Run from the project root::

    .venv/bin/python -m bench.http_fetch                                  # SQLite, 1 worker
    .venv/bin/python -m bench.http_fetch --backend postgres --workers 2  # PostgreSQL, 2 workers
    .venv/bin/python -m bench.http_fetch --quick                          # 1 s + 3 s a run
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from adapters.settings import Settings
from adapters.wiring import open_services
from bench import stopping
from bench.postgres import drop_schema, postgres_reachable, redact, test_dsn, with_schema
from bench.servers import HOST, Server, running, server_env
from bench.tables import print_table
from keys.master import MasterKey
from keys.tokens import issue_token
from vault.inputs import ConsentRequest, DocumentDetails

if TYPE_CHECKING:
    from fastapi import FastAPI

KiB = 1024
DOCUMENT_BYTES = 256 * KiB
OFFICER = "officer-li"
DEPARTMENT = "civil-affairs"
PURPOSE = "subsistence-allowance"
RESIDENTS = 256
DOCUMENT_ROUTE = "/v1/residents/{resident}/documents/{document}/content"
OURS_FACTORY = "adapters.http.app:app_from_environment"
BARE_FACTORY = "bench.http_fetch:bare_app"
BARE_FILE_ENV = "BENCH_HTTP_FETCH_BARE_FILE"  # the bare route's bytes, for every bare worker
AUTHORIZATION_ENV = "BENCH_HTTP_FETCH_AUTHORIZATION"  # read by the Lua script
LUA_SCRIPT = Path(__file__).with_suffix(".lua")
WRK_THREADS = 2
WRK_TIMEOUT = "60s"
RESULT_PREFIX = "BENCH-RESULT "
INSTALL_WRK = "apt-get install -y wrk"


@dataclass(frozen=True)
class Row:
    """One load shape, run against both servers."""

    name: str
    connections: int
    spread: bool  # each request another resident's document, or all on the first one


ROWS = (
    Row("64 connections, many residents", 64, spread=True),
    Row("1 connection, many residents", 1, spread=True),
    Row("64 connections, one document", 64, spread=False),
)
SPREAD_ROW, LATENCY_ROW = ROWS[0], ROWS[1]


@dataclass(frozen=True)
class Goal:
    ratio: float  # ours/bare at 64 connections over many residents, at least
    p50_ms: float | None  # ours' p50 at one connection, at most


GOALS = {("sqlite", 1): Goal(0.3, 1.0), ("postgres", 2): Goal(0.2, None)}


# Set-up


@dataclass(frozen=True)
class Target:
    """A path to GET and the SHA-256 of the body it must return."""

    path: str
    digest: bytes


@dataclass(frozen=True)
class Fixture:
    """What the servers and the load need: where the vault lives, what to ask, what to expect."""

    data_dir: Path
    master_key: str
    database_url: str | None
    documents: list[Target]  # one per resident; the first is the one-document row's
    bare_file: Path  # the first document's bytes, for the bare server
    token: str


def set_up(root: Path, residents: int, database_url: str | None) -> Fixture:
    """Residents with one 256 KiB document and one unlimited consent each; an officer token."""
    data_dir = root / "vault"
    master_key = MasterKey.generate().to_base64()
    settings = Settings(
        data_dir=data_dir,
        master_key=SecretStr(master_key),
        database_url=database_url,
        s3_endpoint=None,
    )
    documents: list[Target] = []
    first = b""
    services = open_services(settings)
    try:
        now = datetime.now(UTC)
        for n in range(residents):
            resident = f"bench-resident-{n:04d}"
            content = os.urandom(DOCUMENT_BYTES)
            first = first or content
            services.residents.register(resident)
            document = services.documents.submit(
                resident,
                io.BytesIO(content),
                DocumentDetails("id-card", "居民身份证", "application/pdf"),
            ).value
            services.consents.grant(
                resident,
                ConsentRequest(
                    department=DEPARTMENT,
                    doc_types=("id-card",),
                    purpose=PURPOSE,
                    valid_until=now + timedelta(days=1),
                ),
            )
            path = DOCUMENT_ROUTE.format(resident=resident, document=document.id)
            documents.append(Target(f"{path}?purpose={PURPOSE}", hashlib.sha256(content).digest()))
        services.policies.current_version()
        token = issue_token(
            services.signing.current("tokens"),
            role="officer",
            subject=OFFICER,
            department=DEPARTMENT,
            ttl=timedelta(hours=1),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            now=now,
        )
    finally:
        services.close()
    bare_file = root / "bare.bin"
    bare_file.write_bytes(first)
    return Fixture(data_dir, master_key, database_url, documents, bare_file, token)


# The servers, each in its own process


def bare_app() -> FastAPI:
    """The baseline, built in each worker: one FastAPI route returning the same bytes from memory.

    The bytes are read from the file named by ``BENCH_HTTP_FETCH_BARE_FILE``.
    """
    from fastapi import FastAPI, Response

    from adapters.http.app import NO_TELEMETRY

    content = Path(os.environ[BARE_FILE_ENV]).read_bytes()
    app = FastAPI(telemetry=NO_TELEMETRY)  # as ours: FastAPI's OpenTelemetry hooks off

    @app.get(DOCUMENT_ROUTE)
    async def bare(resident: str, document: str) -> Response:
        return Response(content=content, media_type="application/pdf")

    return app


def serve(factory: str, port: int, workers: int) -> None:
    """``uvicorn.run`` as ``civicvault serve --workers N`` calls it, for either server."""
    import uvicorn

    from adapters.http.server import SERVER_OPTIONS

    uvicorn.run(factory, factory=True, workers=workers, host=HOST, port=port, **SERVER_OPTIONS)


def serve_command(side: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "bench.http_fetch", "--serve", side, "--workers", str(workers)]


def check_answers(server: Server, targets: list[Target], headers: dict[str, str]) -> None:
    """Every target once, untimed: a 200 with exactly the document's bytes, or stop here."""
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60.0) as client:
        for target in targets:
            response = client.get(target.path)
            if response.status_code != 200:
                raise RuntimeError(
                    f"{server.name}: GET {target.path} answered {response.status_code}: "
                    f"{response.text[:300]}"
                )
            if hashlib.sha256(response.content).digest() != target.digest:
                raise RuntimeError(f"{server.name}: GET {target.path} sent other bytes")


# The load


@dataclass(frozen=True)
class WrkRun:
    """One wrk run against one server: what came back, how fast, and the CPU it took."""

    seconds: float
    responses: int
    ok: int  # 200s with a body of the document's length
    statuses: dict[str, int]
    wrong_length: int
    socket_errors: dict[str, int]
    latency_us: dict[str, float]
    accepted: int  # applications accepted (bench/http_applications.lua; 0 for a fetch)
    server_cpu: float
    client_cpu: float
    per_worker: list[int]  # connections each server worker held one second in, most first

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        """Responses that were not a 200 of the right length, plus socket errors."""
        return self.responses - self.ok + sum(self.socket_errors.values())

    def failures(self) -> str:
        parts = [f"HTTP {s}: {n}" for s, n in sorted(self.statuses.items()) if s != "200"]
        if self.wrong_length:
            parts.append(f"200 of another length: {self.wrong_length}")
        parts += [f"{kind}: {n}" for kind, n in self.socket_errors.items() if n]
        return ", ".join(parts)

    def p_ms(self, which: str) -> float:
        return self.latency_us[which] / 1000

    def cpu_ms(self, seconds: float) -> float:
        """CPU milliseconds per counted request."""
        return seconds / max(self.ok, 1) * 1000


def wrk_version(wrk: str) -> str:
    """``wrk -v`` prints its version in the first line (and exits 1)."""
    result = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    words = (result.stdout or result.stderr).split()
    return words[1] if len(words) > 1 else "?"


def run_wrk(
    wrk: str, server: Server, paths_file: Path, connections: int, seconds: int,
    env: dict[str, str], *, script: Path = LUA_SCRIPT, argument: str = str(DOCUMENT_BYTES),
) -> WrkRun:
    """One wrk run of ``seconds`` against ``server``, with the CPU both sides spent:
    ``script`` is given the file, ``argument`` (by default this bench's script and the
    document's length) and the number of wrk's threads."""
    threads = min(WRK_THREADS, connections)
    command = [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
        "--timeout", WRK_TIMEOUT, "-s", str(script), server.base_url,
        "--", str(paths_file), argument, str(threads),
    ]
    server_cpu = server.cpu_seconds()
    client = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    per_worker: list[int] = []
    if server.workers > 1:
        time.sleep(min(1.0, seconds / 2))
        per_worker = server.connections_per_worker()
    stdout, stderr = process.communicate(timeout=seconds + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = server.cpu_seconds() - server_cpu
    client_cpu = (after.ru_utime - client.ru_utime) + (after.ru_stime - client.ru_stime)
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        raise RuntimeError(
            f"wrk exited with {process.returncode} against {server.name}:\n{stdout}\n{stderr}"
        )
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    return WrkRun(
        seconds=result["duration_us"] / 1e6,
        responses=int(result["requests"]),
        ok=int(result["ok"]),
        statuses={str(k): int(v) for k, v in result["statuses"].items()},
        wrong_length=int(result["wrong_length"]),
        socket_errors={str(k): int(v) for k, v in result["errors"].items()},
        latency_us={str(k): float(v) for k, v in result["latency_us"].items()},
        accepted=int(result.get("accepted", 0)),
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        per_worker=per_worker,
    )


@dataclass(frozen=True)
class Side:
    """One server in one row: the timed run, and what failed in its warm-up."""

    run: WrkRun
    warmup_failed: int
    warmup_failures: str

    @property
    def failed(self) -> int:
        return self.run.failed + self.warmup_failed


@dataclass(frozen=True)
class RowResult:
    row: Row
    order: str
    ours: Side
    bare: Side

    @property
    def ratio(self) -> float:
        return self.ours.run.rate / self.bare.run.rate if self.bare.run.rate else 0.0


def measure_side(
    wrk: str, server: Server, row: Row, paths: dict[bool, Path], env: dict[str, str],
    warmup: int, duration: int,
) -> Side:
    if warmup:
        first = run_wrk(wrk, server, paths[row.spread], row.connections, warmup, env)
        warmup_failed, warmup_failures = first.failed, first.failures()
    else:
        warmup_failed, warmup_failures = 0, ""
    run = run_wrk(wrk, server, paths[row.spread], row.connections, duration, env)
    spread = (
        f" (connections per worker: {'/'.join(map(str, run.per_worker))})"
        if run.per_worker
        else ""
    )
    problems = f", {run.failed} failed" if run.failed else ""
    print(
        f"  {row.name} — {server.name}: {run.rate:,.0f} req/s, p50 {run.p_ms('p50'):.2f} ms"
        f"{problems}{spread}",
        flush=True,
    )
    return Side(run, warmup_failed, warmup_failures)


def ours_env(fixture: Fixture) -> dict[str, str]:
    """The environment ours is started with: the fixture's vault, the fetch limit lifted."""
    env = {
        "CIVICVAULT_DATA_DIR": str(fixture.data_dir),
        "CIVICVAULT_MASTER_KEY": fixture.master_key,
        # One officer's token drives the load: the per-officer fetch limit is lifted
        # (the bench measures throughput, and the limiter's own cost stays in).
        "CIVICVAULT_RATE_LIMIT_FETCHES": "100000000/minute",
    }
    if fixture.database_url:
        env["CIVICVAULT_DATABASE_URL"] = fixture.database_url
    return server_env(env)


def running_ours(fixture: Fixture, root: Path, workers: int) -> AbstractContextManager[Server]:
    return running(
        "ours", serve_command("ours", workers), workers, ours_env(fixture), "/healthz",
        root / "ours.log",
    )


def write_paths(fixture: Fixture, root: Path) -> dict[bool, Path]:
    """wrk's paths files: every resident's document (True), or the first one only (False)."""
    paths = {True: root / "many.txt", False: root / "one.txt"}
    paths[True].write_text("".join(f"{t.path}\n" for t in fixture.documents))
    paths[False].write_text(f"{fixture.documents[0].path}\n")
    return paths


def wrk_environment(fixture: Fixture) -> dict[str, str]:
    return {**server_env({}), AUTHORIZATION_ENV: f"Bearer {fixture.token}"}


@contextmanager
def servers(
    fixture: Fixture, root: Path, workers: int
) -> Iterator[tuple[Server, Server]]:
    with ExitStack() as stack:
        ours = stack.enter_context(running_ours(fixture, root, workers))
        bare = stack.enter_context(
            running(
                "bare", serve_command("bare", workers), workers,
                server_env({BARE_FILE_ENV: str(fixture.bare_file)}),
                fixture.documents[0].path, root / "bare.log",
            )
        )
        yield ours, bare


def measure(
    wrk: str, fixture: Fixture, root: Path, workers: int, warmup: int, duration: int
) -> list[RowResult]:
    paths = write_paths(fixture, root)
    wrk_env = wrk_environment(fixture)
    with servers(fixture, root, workers) as (ours, bare):
        check_answers(ours, fixture.documents, {"Authorization": f"Bearer {fixture.token}"})
        bare_digest = hashlib.sha256(fixture.bare_file.read_bytes()).digest()
        check_answers(bare, [Target(fixture.documents[0].path, bare_digest)], {})
        results: list[RowResult] = []
        for n, row in enumerate(ROWS):
            first, second = (ours, bare) if n % 2 == 0 else (bare, ours)
            sides = {
                server.name: measure_side(wrk, server, row, paths, wrk_env, warmup, duration)
                for server in (first, second)
            }
            order = f"{first.name}, {second.name}"
            results.append(RowResult(row, order, sides["ours"], sides["bare"]))
        for server in (ours, bare):
            if server.exited():
                print(f"  the {server.name} server exited early:\n{server.log_tail()}")
    return results


# Output


def ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def report(results: list[RowResult], backend: str, workers: int) -> bool:
    """The tables and the goals; True if ours answered every request rightly."""
    print_table(
        [
            "row", "order", "ours req/s", "ours p50 ms", "ours p99 ms",
            "bare req/s", "bare p50 ms", "bare p99 ms", "ours/bare",
        ],
        [
            [
                r.row.name,
                r.order,
                f"{r.ours.run.rate:,.0f}",
                ms(r.ours.run.p_ms("p50")),
                ms(r.ours.run.p_ms("p99")),
                f"{r.bare.run.rate:,.0f}",
                ms(r.bare.run.p_ms("p50")),
                ms(r.bare.run.p_ms("p99")),
                f"{r.ratio:.2f}",
            ]
            for r in results
        ],
    )
    print()
    print("Requests counted, failed (warm-up included), and CPU ms per counted request:")
    print_table(
        [
            "row", "ours ok", "failed", "server CPU", "wrk CPU",
            "bare ok", "failed", "server CPU", "wrk CPU",
        ],
        [
            [
                r.row.name,
                f"{r.ours.run.ok:,}",
                str(r.ours.failed),
                ms(r.ours.run.cpu_ms(r.ours.run.server_cpu)),
                ms(r.ours.run.cpu_ms(r.ours.run.client_cpu)),
                f"{r.bare.run.ok:,}",
                str(r.bare.failed),
                ms(r.bare.run.cpu_ms(r.bare.run.server_cpu)),
                ms(r.bare.run.cpu_ms(r.bare.run.client_cpu)),
            ]
            for r in results
        ],
    )
    for r in results:
        for name, side in (("ours", r.ours), ("bare", r.bare)):
            if side.run.failed:
                print(f"  {r.row.name}, {name}, failed: {side.run.failures()}")
            if side.warmup_failed:
                print(f"  {r.row.name}, {name}, failed in the warm-up: {side.warmup_failures}")
    cores = os.cpu_count() or 0
    shape = (
        "one process" if workers == 1 else f"{workers} worker processes and a supervisor"
    )
    print(
        f"  note: the {cores} core{'' if cores == 1 else 's'} of this machine are shared by the "
        f"server under load ({shape}) and wrk; the other server idles meanwhile"
    )
    print()

    clean = all(r.ours.failed == 0 for r in results)
    by_row = {r.row: r for r in results}
    goal = GOALS.get((backend, workers))
    if goal is None:
        print(f"goal: none set for {backend} with {workers} worker{'' if workers == 1 else 's'}")
    else:
        spread = by_row[SPREAD_ROW]
        print(
            f"goal: ours >= {goal.ratio} x bare at {SPREAD_ROW.name}, {backend}, {workers} "
            f"worker{'' if workers == 1 else 's'}: {spread.ratio:.2f} -> "
            f"{'met' if spread.ratio >= goal.ratio else 'not met'}"
        )
        if goal.p50_ms is not None:
            p50 = by_row[LATENCY_ROW].ours.run.p_ms("p50")
            print(
                f"goal: ours p50 <= {goal.p50_ms:g} ms at {LATENCY_ROW.name}: {p50:.2f} ms -> "
                f"{'met' if p50 <= goal.p50_ms else 'not met'}"
            )
    print(
        "every response of ours a 200 with the document's length, no socket error: "
        + ("yes" if clean else "NO")
    )
    return clean


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_heading(
    wrk: str, args: argparse.Namespace, backend_note: str, warmup: int, duration: int
) -> None:
    command = [os.path.relpath(sys.executable), "-m", "bench.http_fetch", *sys.argv[1:]]
    packages = ("fastapi", "starlette", "uvicorn", "httptools", "uvloop", "eventsourcing")
    print(f"civicvault HTTP fetch benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"command: {shlex.join(command)}")
    print(
        f"machine: {os.cpu_count()} cores ({cpu_model()}), {platform.platform()}; "
        f"load average {load_average()} at the start"
    )
    print(
        f"versions: Python {platform.python_version()}, "
        + ", ".join(f"{p} {version(p)}" for p in packages)
        + f", wrk {wrk_version(wrk)} ({wrk})"
    )
    print(f"store: {backend_note}")
    print(
        f"load: wrk with bench/http_fetch.lua, {WRK_THREADS} threads (1 at one connection); "
        f"{warmup} s warm-up + {duration} s timed per server and row"
        f"{' (quick)' if args.quick else ''}; {args.residents} residents, "
        f"{DOCUMENT_BYTES // KiB} KiB documents; {args.workers} uvicorn worker"
        f"{'' if args.workers == 1 else 's'} per server (ours and bare alike)"
    )
    print()


# Main


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--workers", type=positive_int, default=1,
        help="uvicorn worker processes for each server, ours and bare alike (default 1)",
    )
    parser.add_argument("--quick", action="store_true", help="1 s warm-up + 3 s runs")
    parser.add_argument("--duration", type=positive_int, help="timed seconds per server and row")
    parser.add_argument("--warmup", type=int, help="untimed seconds before each timed run")
    parser.add_argument(
        "--residents", type=positive_int, default=RESIDENTS,
        help=f"residents, one document and consent each (default {RESIDENTS}; at least 64)",
    )
    parser.add_argument("--serve", choices=("ours", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.residents < SPREAD_ROW.connections:
        parser.error(f"--residents must be at least {SPREAD_ROW.connections}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    workers: int = args.workers
    if args.serve is not None:
        serve(OURS_FACTORY if args.serve == "ours" else BARE_FACTORY, args.port, workers)
        return 0
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "wrk is not installed; this bench measures with it and nothing else. "
            f"Install it with: {INSTALL_WRK}",
            file=sys.stderr,
        )
        return 2
    duration: int = args.duration or (3 if args.quick else 10)
    warmup: int = args.warmup if args.warmup is not None else (1 if args.quick else 2)

    with ExitStack() as stack:
        database_url = None
        if args.backend == "postgres":
            dsn = test_dsn()
            server_version = postgres_reachable(dsn)
            if server_version is None:
                return 2
            schema = f"bench_{secrets.token_hex(4)}"
            stack.callback(drop_schema, dsn, schema)
            database_url = with_schema(dsn, schema)
            note = (
                f"PostgreSQL {server_version} at {redact(dsn)}, schema {schema} (dropped at "
                "the end), blobs in a temporary directory"
            )
        else:
            note = f"SQLite {sqlite3.sqlite_version} file and blobs in a temporary directory"
        print_heading(wrk, args, note, warmup, duration)
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="civicvault-bench-")))
        started = time.perf_counter()
        fixture = set_up(root, args.residents, database_url)
        print(f"  set up {args.residents} residents in {time.perf_counter() - started:.1f} s")
        results = measure(wrk, fixture, root, workers, warmup, duration)
        print()
        clean = report(results, args.backend, workers)
        print(f"load average {load_average()} at the end")
    return 0 if clean else 1


if __name__ == "__main__":
    stopping.run(main)
