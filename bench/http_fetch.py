"""HTTP fetch benchmark: authorized 256 KiB fetches/s over real HTTP vs a bare FastAPI route.

What is measured
----------------
Set-up, untimed, in a temporary data directory on the embedded default (SQLite file and local
blob folder; every other ``CIVICVAULT_*`` setting at its default): ``adapters.wiring.open_services``
with a generated master key; 64 residents are registered and each submits one 256 KiB document
of random bytes (an ``id-card``, ``application/pdf``) and grants ``civil-affairs`` an unlimited
consent for ``subsistence-allowance`` valid for one day; the default policy is published
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
   Settings()))``, one per worker) on the same data directory (``CIVICVAULT_DATA_DIR`` and the
   same ``CIVICVAULT_MASTER_KEY`` in its environment, and the per-officer fetch limit lifted by
   ``CIVICVAULT_RATE_LIMIT_FETCHES``: one token drives the whole load), serving
   ``GET /v1/residents/{rid}/documents/{id}/content?purpose=subsistence-allowance`` with the
   bearer token: middleware (request id, metrics, one JSON log line per request — to a file in
   the temporary directory), token check, policy + consent decision, the consent's ``Used``,
   the document's ``Reused`` and the ``AccessAttempt``'s ``Recorded`` committed in one
   transaction (group-committed: the fetches waiting in a worker process are judged in order
   and committed together, up to 64 at a time), then key unwrap, blob read and decryption
   streamed out in pieces of about 1 MiB.
b. bare, the baseline: the factory ``bench.http_fetch:bare_app``, a FastAPI app with one
   ``async`` GET route returning ``Response(content=<the first resident's 256 KiB, read once
   per worker and held in memory>, media_type="application/pdf")``.

Each server must answer (``GET /healthz`` for ours, the route for bare) before it is measured,
and with several workers, every worker must have accepted a probe connection (checked with
psutil), since a keep-alive connection stays with the worker that accepted it; both are
stopped by their pids at the end (terminate, then kill after 10 s; then any worker left
behind), even on error.

Load, from this process: for 1, 16 and 64 concurrent clients, that many asyncio tasks, each
with its own ``httpx.AsyncClient`` holding one keep-alive connection (one shared pool of 64
connections costs httpcore ~20 ms of client CPU per request: it scans every connection on each
request), each looping GET requests for a fixed time (8 s, ``--quick`` 2 s) after an untimed
warm-up (2 s, ``--quick`` 0.5 s) at the same concurrency. In the goal rows every client of ours
fetches the same document (the first resident's) under the same consent, as the task sets it.
The whole body is read and compared with the document; only 200 responses with the right body
are timed and counted; anything else (another status, a wrong body, a client error or
time-out), warm-up included, is counted as failed and printed — for ours it must be 0. Latency
is per request, from send to the last body byte, as the client sees it. The order alternates
between levels (ours first at 1 and 64 clients, bare first at 16) to spread drift. Printed per
level: requests/s, p50 and p99 latency for both, the ratio ours/bare of requests/s, and the CPU
time each side spent per request (server: its process tree from psutil, supervisor and workers,
reaped children included; client: ``time.process_time``), since servers and client share the
machine's cores. With several workers, how the clients' connections fell on the workers is
printed per run (counted with psutil after the warm-up).

One more run of ours, for information, at 64 clients after the 64-client pair: each client
fetches a different resident's document under that resident's consent, so concurrent fetches
no longer touch the same consent and document (each batch then loads one resident, consent
and document per request; across worker processes, fetches of one resident conflict and
retry); its ratio is taken against the bare route at 64 clients.

Goals, at 64 clients on the same document, both servers with the same number of workers: ours
>= 0.5 x the bare route's requests/s, and ours' p99 < 5 x its p50 (with no failed request).

Run from the project root::

    .venv/bin/python -m bench.http_fetch              # 2 s warm-up + 8 s per server and level
    .venv/bin/python -m bench.http_fetch --workers 2  # both servers with 2 uvicorn workers
    .venv/bin/python -m bench.http_fetch --quick      # 0.5 s + 2 s: a smoke test, about 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil  # type: ignore[import-untyped]
from pydantic import SecretStr

from adapters.settings import Settings
from adapters.wiring import open_services
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
LEVELS = (1, 16, 64)
GOAL_LEVEL = 64
RESIDENTS = GOAL_LEVEL  # one per client in the spread run
GOAL_RATIO = 0.5
GOAL_TAIL = 5.0
HOST = "127.0.0.1"
BARE_PATH = "/bare"
READY_SECONDS = 60.0
STOP_SECONDS = 10.0
REQUEST_TIMEOUT = 60.0
OURS_FACTORY = "adapters.http.app:app_from_environment"
BARE_FACTORY = "bench.http_fetch:bare_app"
BARE_FILE_ENV = "BENCH_HTTP_FETCH_BARE_FILE"  # the bare route's bytes, for every bare worker
PROBES_PER_WORKER = 8  # probe connections opened per worker per round while waiting for all


# Set-up


@dataclass(frozen=True)
class Target:
    """A path to GET and the body it must return."""

    path: str
    content: bytes


@dataclass(frozen=True)
class Fixture:
    """What the servers and the load need: where the vault lives, what to ask, what to expect."""

    data_dir: Path
    master_key: str
    documents: list[Target]  # one per resident; the first is the one every goal-run client gets
    bare_file: Path  # the first document's bytes, for the bare server
    token: str


def set_up(root: Path) -> Fixture:
    """Residents with one 256 KiB document and one unlimited consent each; an officer token."""
    data_dir = root / "vault"
    master_key = MasterKey.generate().to_base64()
    settings = Settings(
        data_dir=data_dir,
        master_key=SecretStr(master_key),
        database_url=None,
        s3_endpoint=None,
    )
    documents: list[Target] = []
    services = open_services(settings)
    try:
        now = datetime.now(UTC)
        for n in range(RESIDENTS):
            resident = f"bench-resident-{n:04d}"
            content = os.urandom(DOCUMENT_BYTES)
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
            path = f"/v1/residents/{resident}/documents/{document.id}/content?purpose={PURPOSE}"
            documents.append(Target(path, content))
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
    bare_file.write_bytes(documents[0].content)
    return Fixture(data_dir, master_key, documents, bare_file, token)


# The servers, each in its own process


def bare_app() -> FastAPI:
    """The baseline, built in each worker: one FastAPI route returning the same bytes from memory.

    The bytes are read from the file named by ``BENCH_HTTP_FETCH_BARE_FILE``.
    """
    from fastapi import FastAPI, Response

    content = Path(os.environ[BARE_FILE_ENV]).read_bytes()
    app = FastAPI()

    @app.get(BARE_PATH)
    async def bare() -> Response:
        return Response(content=content, media_type="application/pdf")

    return app


def serve(factory: str, port: int, workers: int) -> None:
    """``uvicorn.run`` as ``civicvault serve --workers N`` calls it, for either server."""
    import uvicorn

    from adapters.http.server import SERVER_OPTIONS

    uvicorn.run(factory, factory=True, workers=workers, host=HOST, port=port, **SERVER_OPTIONS)


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    workers: int
    log: Path
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.process.pid)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def children(self) -> list[psutil.Process]:
        try:
            children: list[psutil.Process] = self.ps.children(recursive=True)
            return children
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """CPU seconds of the whole process tree: itself, its live children, reaped children."""
        total = 0.0
        for n, process in enumerate([self.ps, *self.children()]):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
            if n == 0:
                total += times.children_user + times.children_system
        return total

    def worker_processes(self) -> list[psutil.Process]:
        """The processes that serve requests: uvicorn's spawned workers, or the server itself."""
        if self.workers == 1:
            return [self.ps]
        workers = []
        for child in self.children():
            try:
                if any("spawn_main" in part for part in child.cmdline()):
                    workers.append(child)
            except psutil.NoSuchProcess:
                continue
        return workers

    def connections_per_worker(self) -> list[int]:
        """Established client connections each worker holds, most first."""
        counts = []
        for worker in self.worker_processes():
            try:
                connections = worker.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            counts.append(
                sum(
                    1
                    for c in connections
                    if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
                )
            )
        return sorted(counts, reverse=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any CIVICVAULT_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICVAULT_")}
    env.update(extra)
    return env


@contextmanager
def running(
    name: str, workers: int, env: dict[str, str], ready_path: str, log: Path
) -> Iterator[Server]:
    """Start ``python -m bench.http_fetch --serve ...``; wait until it answers; stop it after."""
    port = free_port()
    args = ["--serve", name, "--workers", str(workers), "--port", str(port)]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.http_fetch", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server: Server | None = None
    try:
        server = Server(name, process, port, workers, log)
        wait_ready(server, ready_path)
        if workers > 1:
            wait_all_workers(server, ready_path)
        yield server
    finally:
        children = server.children() if server is not None else []
        stop(process)
        for child in children:  # only if the supervisor was killed before it stopped them
            if child.is_running():
                child.kill()


def wait_ready(server: Server, ready_path: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"the {server.name} server exited with {server.process.returncode}:\n"
                + server.log_tail()
            )
        try:
            if httpx.get(server.base_url + ready_path, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the {server.name} server did not answer in {READY_SECONDS:.0f} s")


def wait_all_workers(server: Server, ready_path: str) -> None:
    """Open probe connections until every worker has accepted one (connections stay put)."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        with ExitStack() as stack:
            for _ in range(PROBES_PER_WORKER * server.workers):
                probe = stack.enter_context(httpx.Client(base_url=server.base_url, timeout=5.0))
                try:
                    probe.get(ready_path)
                except httpx.TransportError:
                    continue
                counts = server.connections_per_worker()
                if len(counts) == server.workers and min(counts) > 0:
                    return
        time.sleep(0.2)
    raise RuntimeError(
        f"not all {server.workers} workers of the {server.name} server accepted a connection in "
        f"{READY_SECONDS:.0f} s:\n" + server.log_tail()
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# The load


@dataclass
class Run:
    """One server at one concurrency."""

    label: str
    clients: int
    latencies: list[float]
    seconds: float
    failures: Counter[str]
    server_cpu: float
    client_cpu: float
    per_worker: list[int]  # connections each server worker held after the warm-up, most first

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def cpu_ms(self, seconds: float) -> float:
        """CPU milliseconds per counted request."""
        return seconds / max(len(self.latencies), 1) * 1000


async def _load(
    label: str, server: Server, targets: Sequence[Target], headers: dict[str, str],
    clients: int, warmup: float, duration: float,
) -> Run:
    failures: Counter[str] = Counter()
    # One client with one keep-alive connection per task: httpcore's pool scans all of its
    # connections for every request, so a single pool of 64 spends ~20 ms of CPU per request.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with AsyncExitStack() as stack:
        pool = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=server.base_url, headers=headers, limits=limits,
                    timeout=REQUEST_TIMEOUT,
                )
            )
            for _ in range(clients)
        ]

        async def worker(
            client: httpx.AsyncClient, target: Target, until: float, latencies: list[float]
        ) -> None:
            while time.perf_counter() < until:
                start = time.perf_counter()
                try:
                    response = await client.get(target.path)
                except httpx.HTTPError as e:
                    failures[type(e).__name__] += 1
                    continue
                elapsed = time.perf_counter() - start
                if response.status_code != 200:
                    failures[f"HTTP {response.status_code}"] += 1
                elif response.content != target.content:
                    failures["wrong body"] += 1
                else:
                    latencies.append(elapsed)

        def all_workers(until: float, latencies: list[float]) -> list[asyncio.Task[None]]:
            return [
                asyncio.create_task(worker(client, targets[i % len(targets)], until, latencies))
                for i, client in enumerate(pool)
            ]

        await asyncio.gather(*all_workers(time.perf_counter() + warmup, []))
        per_worker = server.connections_per_worker() if server.workers > 1 else [clients]

        latencies: list[float] = []
        server_cpu = server.cpu_seconds()
        client_cpu = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*all_workers(start + duration, latencies))
        seconds = time.perf_counter() - start
        client_cpu = time.process_time() - client_cpu
        server_cpu = server.cpu_seconds() - server_cpu
    return Run(
        label, clients, latencies, seconds, failures, server_cpu, client_cpu, per_worker
    )


def load(
    label: str, server: Server, targets: Sequence[Target], headers: dict[str, str],
    clients: int, warmup: float, duration: float,
) -> Run:
    run = asyncio.run(_load(label, server, targets, headers, clients, warmup, duration))
    spread = (
        f" (connections per worker: {'/'.join(map(str, run.per_worker))})"
        if server.workers > 1
        else ""
    )
    print(f"  {label}, {clients} client(s): {run.rate:,.0f} req/s{spread}", flush=True)
    return run


@dataclass
class Level:
    clients: int
    ours: Run
    bare: Run
    order: str

    @property
    def ratio(self) -> float:
        return self.ours.rate / self.bare.rate if self.bare.rate else 0.0


@dataclass
class Results:
    levels: list[Level]
    spread: Run  # ours, each client fetching a different resident's document
    workers: int  # uvicorn workers per server


def measure(
    fixture: Fixture, root: Path, warmup: float, duration: float, workers: int
) -> Results:
    ours_env = server_env(
        {
            "CIVICVAULT_DATA_DIR": str(fixture.data_dir),
            "CIVICVAULT_MASTER_KEY": fixture.master_key,
            # One officer's token drives the load: the per-officer fetch limit is lifted
            # (the bench measures throughput, and the limiter's own cost stays in).
            "CIVICVAULT_RATE_LIMIT_FETCHES": "100000000/minute",
        }
    )
    bare_env = server_env({BARE_FILE_ENV: str(fixture.bare_file)})
    with ExitStack() as stack:
        ours = stack.enter_context(
            running("ours", workers, ours_env, "/healthz", root / "ours.log")
        )
        bare = stack.enter_context(
            running("bare", workers, bare_env, BARE_PATH, root / "bare.log")
        )
        auth = {"Authorization": f"Bearer {fixture.token}"}
        same = fixture.documents[:1]
        bare_target = [Target(BARE_PATH, fixture.documents[0].content)]
        levels: list[Level] = []
        for n, clients in enumerate(LEVELS):
            ours_first = n % 2 == 0
            runs: dict[str, Run] = {}
            for side in ("ours", "bare") if ours_first else ("bare", "ours"):
                if side == "ours":
                    runs[side] = load("ours", ours, same, auth, clients, warmup, duration)
                else:
                    runs[side] = load("bare", bare, bare_target, {}, clients, warmup, duration)
            order = "ours, bare" if ours_first else "bare, ours"
            levels.append(Level(clients, runs["ours"], runs["bare"], order))
        spread = load(
            "ours, one resident per client", ours, fixture.documents, auth,
            GOAL_LEVEL, warmup, duration,
        )
        for server in (ours, bare):
            if server.process.poll() is not None:
                print(f"  the {server.name} server exited early:\n{server.log_tail()}")
    return Results(levels, spread, workers)


# Output


def report(results: Results) -> bool:
    levels = results.levels
    print_table(
        [
            "clients", "ours req/s", "ours p50 ms", "ours p99 ms",
            "bare req/s", "bare p50 ms", "bare p99 ms", "ours/bare",
        ],
        [
            [
                str(lv.clients),
                f"{lv.ours.rate:,.0f}",
                f"{lv.ours.percentile_ms(0.5):.1f}",
                f"{lv.ours.percentile_ms(0.99):.1f}",
                f"{lv.bare.rate:,.0f}",
                f"{lv.bare.percentile_ms(0.5):.1f}",
                f"{lv.bare.percentile_ms(0.99):.1f}",
                f"{lv.ratio:.2f}",
            ]
            for lv in levels
        ],
    )
    goal = next((lv for lv in levels if lv.clients == GOAL_LEVEL), None)
    spread = results.spread
    if goal is not None:
        print(
            f"  (info) ours at {spread.clients} clients, each on its own resident's document and "
            f"consent: {spread.rate:,.0f} req/s, p50 {spread.percentile_ms(0.5):.1f} ms, "
            f"p99 {spread.percentile_ms(0.99):.1f} ms, "
            f"{spread.rate / goal.bare.rate:.2f} of bare"
        )
    print()
    print("Requests counted, failed, and CPU ms per counted request (server processes; client):")
    rows = [
        [
            str(lv.clients),
            lv.order,
            f"{len(lv.ours.latencies):,}",
            str(lv.ours.failed),
            f"{lv.ours.cpu_ms(lv.ours.server_cpu):.2f}",
            f"{lv.ours.cpu_ms(lv.ours.client_cpu):.2f}",
            f"{len(lv.bare.latencies):,}",
            str(lv.bare.failed),
            f"{lv.bare.cpu_ms(lv.bare.server_cpu):.2f}",
            f"{lv.bare.cpu_ms(lv.bare.client_cpu):.2f}",
        ]
        for lv in levels
    ]
    rows.append(
        [
            f"{spread.clients} spread",
            "ours",
            f"{len(spread.latencies):,}",
            str(spread.failed),
            f"{spread.cpu_ms(spread.server_cpu):.2f}",
            f"{spread.cpu_ms(spread.client_cpu):.2f}",
            "-", "-", "-", "-",
        ]
    )
    print_table(
        [
            "clients", "order", "ours ok", "ours failed", "ours srv cpu", "ours cli cpu",
            "bare ok", "bare failed", "bare srv cpu", "bare cli cpu",
        ],
        rows,
    )
    for run in [r for lv in levels for r in (lv.ours, lv.bare)] + [spread]:
        if run.failures:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(run.failures.items()))
            print(f"  {run.label} at {run.clients} clients, failed: {detail}")
    cores = os.cpu_count() or 0
    workers = results.workers
    shape = (
        "one process, one worker"
        if workers == 1
        else f"{workers} uvicorn worker processes plus an idle supervisor"
    )
    print(
        f"  note: this machine has {cores} CPU core{'' if cores == 1 else 's'}, shared by the "
        f"server under load ({shape}) and this client process (one), so every figure includes "
        "the client's CPU competing with the server's; the other server idles meanwhile"
    )
    print()

    if goal is None:
        print(f"goal met: no (no run at {GOAL_LEVEL} clients)")
        return False
    p50, p99 = goal.ours.percentile_ms(0.5), goal.ours.percentile_ms(0.99)
    ratio_met = goal.ratio >= GOAL_RATIO
    tail_met = p99 < GOAL_TAIL * p50
    clean = goal.ours.failed == 0
    print(
        f"goal: ours >= {GOAL_RATIO} x bare req/s at {GOAL_LEVEL} clients, {workers} "
        f"worker{'' if workers == 1 else 's'} each (SQLite + local blobs):"
        f" {goal.ratio:.2f} -> {'yes' if ratio_met else 'no'}"
    )
    print(
        f"goal: ours p99 < {GOAL_TAIL:.0f} x p50 at {GOAL_LEVEL} clients: {p99:.1f} ms vs "
        f"{GOAL_TAIL:.0f} x {p50:.1f} = {GOAL_TAIL * p50:.1f} ms -> {'yes' if tail_met else 'no'}"
    )
    met = ratio_met and tail_met and clean
    print(
        f"goal met: {'yes' if met else 'no'}"
        + ("" if clean else f" (ours had {goal.ours.failed} failed request(s))")
    )
    return met


# Main


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short runs for a smoke test")
    parser.add_argument("--duration", type=float, help="timed seconds per server and level")
    parser.add_argument("--warmup", type=float, help="untimed seconds before each timed run")
    parser.add_argument(
        "--workers", type=positive_int, default=1,
        help="uvicorn worker processes for each server, ours and bare alike (default 1)",
    )
    parser.add_argument("--serve", choices=("ours", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workers: int = args.workers
    if args.serve is not None:
        serve(OURS_FACTORY if args.serve == "ours" else BARE_FACTORY, args.port, workers)
        return 0
    duration: float = args.duration or (2.0 if args.quick else 8.0)
    warmup: float = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)

    print(
        f"civicvault HTTP fetch benchmark — fastapi {version('fastapi')}, "
        f"uvicorn {version('uvicorn')}, httpx {version('httpx')}; "
        f"{DOCUMENT_BYTES // KiB} KiB document, {warmup:g} s warm-up + {duration:g} s timed per "
        f"run{' (quick)' if args.quick else ''}; {workers} uvicorn worker"
        f"{'' if workers == 1 else 's'} per server (ours and bare alike)"
    )
    print()
    with tempfile.TemporaryDirectory(prefix="civicvault-bench-") as tmp:
        root = Path(tmp)
        fixture = set_up(root)
        results = measure(fixture, root, warmup, duration, workers)
        print()
        report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
