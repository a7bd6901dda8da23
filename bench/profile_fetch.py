"""Where the server's time goes in an HTTP fetch: py-spy on ours under wrk's load, by stage.

What is measured
----------------
The set-up, the server and the load are ``bench.http_fetch``'s (its functions, not a copy):
the same fixture (``--residents`` residents, one 256 KiB document and one unlimited consent
each, one officer token), ours alone (``adapters.http.app:app_from_environment`` under
``uvicorn.run`` with ``SERVER_OPTIONS``, one worker, the embedded SQLite default or
``--backend postgres``), every document fetched once and checked, then the row "64
connections, many residents": a wrk warm-up (``--warmup``, 2 s), then a timed wrk run
(``--duration``, 10 s) during which ``py-spy record --pid <server> --threads --format raw``
samples the server's process (all its threads: the event loop's, the batch thread
``vault-fetches`` that judges and commits, AnyIO's worker threads, the follower ``views``).
The folded stacks (one line per distinct stack and thread, with its sample count) are written
to ``--output`` (``fetch-profile.folded``) and can be read again without a run (``--stacks``).

``--mode`` says what is sampled and what is printed:

- ``cpu`` (default; ``--nonblocking``, 500 Hz): threads py-spy sees as active. Each thread's
  CPU time in the run is taken from the kernel (psutil, per thread) and shared among the
  buckets of that thread's samples (samples whose leaf waits on a lock, a queue or an event
  get none: runnable is not running); the CPU of threads that ended meanwhile (the rate
  limiter's timers) goes to the samples of threads not alive at the end. Printed: CPU per
  thread group, then per bucket: samples, share of the CPU and CPU ms per request.
- ``gil`` (``--gil``): only the thread holding the GIL; a sample is 1/500 s of the GIL held,
  so GIL ms per request = samples / 500 / requests: the serialized interpreter time.
- ``native`` (``--native --idle``, 20 Hz): with the C frames, which py-spy unwinds only with
  the process stopped (slow: the run's rate drops), for each thread group the share of
  samples running, waiting for the GIL, waiting on a lock or queue, in epoll, in fdatasync.

Buckets (``RULES``): a sample of the follower's thread is the follower's, whatever it calls;
any other stack is read **from the leaf upwards**, and the first frame that matches a rule's
pattern (for one frame, the rules in the table's order) names the bucket: so the innermost
stage a sample is in wins (SQLite's commit under ``Store.record`` is "commit", not the
middleware around it), and a general library's frame (uvicorn, starlette, fastapi) counts only
where nothing more specific lies beneath it. Without ``--native`` a C function's time is in
the Python frame that called it (uvloop's own C code in ``Runner.run``: "sending"). A stack
no rule matches is "other". ``--top N`` prints each bucket's N most sampled leaf frames, to
check the rules.

py-spy is in the ``bench`` extra (``.venv/bin/pip install -e '.[bench]'``); it needs to ptrace
the server (root, ``CAP_SYS_PTRACE`` or ``kernel.yama.ptrace_scope`` 0). Run from the
project root::

    .venv/bin/python -m bench.profile_fetch                     # CPU by stage
    .venv/bin/python -m bench.profile_fetch --mode gil          # GIL by stage
    .venv/bin/python -m bench.profile_fetch --mode native       # what each thread waits for
    .venv/bin/python -m bench.profile_fetch --quick             # 1 s warm-up, 3 s profiled
    .venv/bin/python -m bench.profile_fetch --stacks fetch-profile.folded   # read again
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import stopping
from bench.http_fetch import (
    INSTALL_WRK,
    RESIDENTS,
    SPREAD_ROW,
    WrkRun,
    check_answers,
    load_average,
    run_wrk,
    running_ours,
    set_up,
    write_paths,
    wrk_environment,
)
from bench.postgres import drop_schema, postgres_reachable, test_dsn, with_schema
from bench.servers import Server
from bench.tables import print_table

RATE = 500  # samples per second (--rate), but with --mode native
NATIVE_RATE = 20  # --native stops the process for each sample: far fewer
FOLLOWER_THREAD = "views"  # adapters.http.app names the in-process follower's thread so

# Which stage a frame belongs to: (bucket, pattern). A frame is py-spy's "function (file:line)"
# text (the file relative to the project or to site-packages; adapters/http's modules appear
# by their bare names in the event loop's thread). A request's stack is read from the leaf
# upwards; the first frame that matches a pattern names the bucket (for one frame, the rules
# in this order). A C function's time is in the Python frame that called it (no --native).
RULES: tuple[tuple[str, str], ...] = (
    ("key unwrap", r"MasterKeys\.unwrap|unwrap_key|ResidentKeys\.|\(keys/resident_keys\.py"
     r"|\(keys/master\.py|SqlKeyTable\.resident_key"),
    ("decryption", r"\(keys/envelope\.py|_decrypting "),
    ("blob read (local file)", r"\(adapters/blobs_local\.py"),
    ("token check", r"\(keys/tokens\.py|Guard\._authenticate|token_verifier|\(jwt/"
     r"|current_officer|_requiring"),
    ("judging (policy + consent)", r"\(policy/|judge_fetch|_usable_consent|\(vault/services/"
     r"policies\.py|casbin"),
    ("reading state (event store selects)", r"Store\.find|select_events"),
    ("sealing and encoding the three events", r"\(adapters/mapper\.py|\(adapters/transcoding"
     r"\.py|\(keys/secrets\.py|\(vault/access\.py|\(vault/consent\.py|\(vault/document"
     r"\.py|\(vault/aggregate\.py|record_fetch|\(eventsourcing/domain\.py"),
    ("commit (store transaction, group commit)", r"Store\.record|EventStore\.put|\(adapters/sqlite_"
     r"recorder\.py|insert_events"),
    ("hand-off to and from the vault-fetches thread", r"\(vault/batching\.py|Fetches\.submit"
     r"|\(asyncio/futures\.py|\(concurrent/futures/"),
    ("middleware: guard (bounds, rate limiter)", r"\(guard\.py|\(adapters/http/guard\.py"
     r"|\(limits/|Timer\.run"),
    ("middleware: logging (JSON line)", r"\(logging/|JsonLines"),
    ("middleware: request id, metrics", r"\(observability\.py|\(adapters/http/observability"
     r"\.py|\(prometheus_client/"),
    ("sending (body, ASGI, uvicorn, httptools, uvloop)", r"\(uvicorn/|\(server\.py|httptools"
     r"|\(starlette/responses\.py|content_response|_regrouped|_opened |Runner\.run "
     r"\(asyncio/runners"),
    ("FastAPI routing, dependencies, validation", r"\(fastapi/|\(starlette/|\(pydantic|"
     r"\(anyio/|\(deps\.py|\(adapters/http/deps\.py"),
    ("route handler and vault services, other", r"\(vault/|\(departments\.py"
     r"|\(adapters/http/departments\.py"),
)
# A sample whose leaf is one of these waits on a lock, a queue or an event: py-spy counted the
# thread as active (it was runnable: woken, or waiting for a core or for the GIL), but the
# time is not work of its own. These samples are counted apart and given no CPU.
WAITS = re.compile(r"^(Condition\.wait|Event\.wait|Queue\.get|Thread\.join) \(threading\.py"
                   r"|^Queue\.get \(queue\.py")

# py-spy's options for each --mode.
MODES = {
    "cpu": ["--nonblocking"],
    "gil": ["--nonblocking", "--gil"],
    "native": ["--native", "--idle"],  # py-spy unwinds C stacks only with the process stopped
}

OTHER = "other"
FOLLOWER = "follower (projections, ledger; thread views)"
WAITING = "waiting (lock, queue, event)"
BUCKETS = (*dict.fromkeys(bucket for bucket, _ in RULES), FOLLOWER, OTHER)


@dataclass(frozen=True)
class Stack:
    thread: str
    frames: tuple[str, ...]  # root first
    samples: int


THREAD = re.compile(r"^thread \((\w+)\)(?:: (.*))?$")


def thread_id(thread: str) -> int | None:
    match = THREAD.match(thread)
    return int(match.group(1)) if match and match.group(1).isdigit() else None


def thread_name(thread: str) -> str:
    match = THREAD.match(thread)
    name = (match.group(2) or "") if match else ""
    return "Thread-N (short-lived)" if re.fullmatch(r"Thread-\d+", name) else name


def parse_folded(text: str) -> list[Stack]:
    """py-spy's raw format: ``frame;frame;... count``, with --threads a thread frame first."""
    stacks = []
    for line in text.split("\n"):  # not splitlines: a frame's name may hold U+2028 and kin
        if not line.strip():
            continue
        body, _, count = line.rpartition(" ")
        frames = body.split(";")
        thread = ""
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            thread, frames = frames[0], frames[1:]
        stacks.append(Stack(thread, tuple(frames), int(count)))
    return stacks


COMPILED = [(bucket, re.compile(pattern)) for bucket, pattern in RULES]


def classify(stack: Stack) -> str:
    if stack.frames and WAITS.search(stack.frames[-1]):
        return WAITING
    if thread_name(stack.thread) == FOLLOWER_THREAD:
        return FOLLOWER
    for frame in reversed(stack.frames):
        for bucket, pattern in COMPILED:
            if pattern.search(frame):
                return bucket
    return OTHER


def thread_cpu(server: Server) -> tuple[dict[int, float], float]:
    """CPU seconds of each live thread of the server (by native thread id), and its total."""
    threads = {t.id: t.user_time + t.system_time for t in server.ps.threads()}
    times = server.ps.cpu_times()
    return threads, times.user + times.system


@dataclass(frozen=True)
class Measured:
    """The profiled run: requests counted, and CPU seconds per thread (by native id)."""

    requests: int
    rate: float
    cpu_by_thread: dict[int, float]  # threads alive at the end (from 0 if born meanwhile)
    cpu_total: float  # the process: also threads that ended meanwhile


def group_of(stack: Stack) -> str:
    return thread_name(stack.thread) or "?"


def breakdown(stacks: list[Stack], measured: Measured | None) -> dict[str, tuple[int, float]]:
    """Samples and CPU seconds per bucket.

    Each thread group's CPU (from the kernel's count per thread, not from the samples) is
    shared among the buckets of its samples, wait samples left out; the CPU of threads that
    ended during the run goes to the samples of threads not alive at the end."""
    samples: Counter[str] = Counter()
    by_group: dict[str, Counter[str]] = {}
    group_cpu: defaultdict[str, float] = defaultdict(float)
    seen: set[int] = set()
    for stack in stacks:
        bucket = classify(stack)
        samples[bucket] += stack.samples
        tid = thread_id(stack.thread)
        group = group_of(stack)
        if measured is not None and tid is not None and tid not in measured.cpu_by_thread:
            group = ENDED
        by_group.setdefault(group, Counter())[bucket] += stack.samples
        if measured is not None and tid is not None and tid not in seen:
            seen.add(tid)
            group_cpu[group] += measured.cpu_by_thread.get(tid, 0.0)
    if measured is None:
        return {b: (n, 0.0) for b, n in samples.items()}
    group_cpu[ENDED] += measured.cpu_total - sum(group_cpu.values())
    cpu: defaultdict[str, float] = defaultdict(float)
    for group, seconds in group_cpu.items():
        working = {b: n for b, n in by_group.get(group, Counter()).items() if b != WAITING}
        total = sum(working.values())
        if not total:
            cpu[UNSAMPLED] += seconds
            continue
        for bucket, n in working.items():
            cpu[bucket] += seconds * n / total
    return {b: (samples[b], cpu[b]) for b in (*samples, *cpu)}


ENDED = "threads that ended during the run"
UNSAMPLED = "threads with no working sample"


def group_table(stacks: list[Stack], measured: Measured) -> None:
    """Per thread group: samples (working, waiting) beside the kernel's CPU per request."""
    rows: dict[str, list[float]] = {}
    seen: set[int] = set()
    for stack in stacks:
        tid = thread_id(stack.thread)
        group = group_of(stack)
        if tid is not None and tid not in measured.cpu_by_thread:
            group = ENDED
        row = rows.setdefault(group, [0, 0, 0.0, 0])
        row[1 if classify(stack) == WAITING else 0] += stack.samples
        if tid is not None and tid not in seen:
            seen.add(tid)
            row[2] += measured.cpu_by_thread.get(tid, 0.0)
            row[3] += 1
    rows.setdefault(ENDED, [0, 0, 0.0, 0])[2] += measured.cpu_total - sum(
        r[2] for r in rows.values()
    )
    per = 1000 / max(measured.requests, 1)
    print_table(
        ["thread", "threads", "working samples", "wait samples", "CPU ms per request"],
        [
            [name, str(int(r[3])), f"{int(r[0]):,}", f"{int(r[1]):,}", f"{r[2] * per:.3f}"]
            for name, r in sorted(rows.items(), key=lambda kv: -kv[1][2])
        ],
    )


def gil_breakdown(stacks: list[Stack], rate: int) -> dict[str, tuple[int, float]]:
    """With --gil, samples and seconds of holding the GIL per bucket (a sample is 1/rate s)."""
    samples: Counter[str] = Counter()
    for stack in stacks:
        samples[classify(stack)] += stack.samples
    return {b: (n, n / rate) for b, n in samples.items()}



# With --mode native, what a thread is doing, from its innermost frames (a frame of libc
# without a symbol is skipped): waiting on a condition variable or a mutex right under a
# Python lock's acquire (or a queue's get) is waiting on that lock; anywhere else it is
# CPython taking the GIL back after a call that released it (SQLite, a file, a socket,
# os.urandom, uvloop's poll); epoll and fdatasync by their names; the rest running.
LOCK_CALLERS = re.compile(r"acquire_lock|SimpleQueue")
COND_WAITS = re.compile(r"^pthread_cond_(timed)?wait |^pthread_mutex_lock ")


def state_of(stack: Stack) -> str:
    frames = [f for f in stack.frames if not f.startswith("0x")]
    leaf = frames[-1] if frames else ""
    parent = frames[-2] if len(frames) > 1 else ""
    if COND_WAITS.search(leaf):
        return "waiting on a lock or queue" if LOCK_CALLERS.search(parent) else (
            "waiting for the GIL"
        )
    if LOCK_CALLERS.search(leaf) or re.search(r"^(sem_|futex)", leaf):
        return "waiting on a lock or queue"
    if leaf.startswith("epoll"):
        return "in epoll (idle)"
    if re.match(r"f(data)?sync ", leaf):
        return "in fdatasync"
    return "running"


def states_table(stacks: list[Stack]) -> None:
    """With --mode native: for each thread group, the share of its samples in each state."""
    by_group: dict[str, Counter[str]] = {}
    threads: dict[str, set[str]] = {}
    for stack in stacks:
        name = group_of(stack)
        by_group.setdefault(name, Counter())[state_of(stack)] += stack.samples
        threads.setdefault(name, set()).add(stack.thread)
    states = (
        "running", "waiting for the GIL", "waiting on a lock or queue", "in epoll (idle)",
        "in fdatasync",
    )
    rows = []
    for name, counts in sorted(by_group.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(counts.values())
        rows.append(
            [name, str(len(threads[name])), f"{total:,}"]
            + [f"{counts[state] / total:.0%}" for state in states]
        )
    print_table(["thread", "threads", "samples", *states], rows)


def print_breakdown(
    result: dict[str, tuple[int, float]], measured: Measured | None, what: str = "CPU"
) -> None:
    total_samples = sum(n for n, _ in result.values()) or 1
    total_cpu = sum(c for _, c in result.values()) or 1.0
    per = 1000 / max(measured.requests, 1) if measured else 0.0
    rows = []
    order = [*BUCKETS, WAITING, UNSAMPLED]
    for bucket in sorted(result, key=lambda b: order.index(b) if b in order else len(order)):
        n, cpu = result[bucket]
        rows.append(
            [
                bucket,
                f"{n:,}",
                f"{n / total_samples:.1%}",
                f"{cpu / total_cpu:.1%}" if measured else "-",
                f"{cpu * per:.3f}" if measured else "-",
            ]
        )
    rows.append(
        ["total", f"{total_samples:,}", "100%", "100%",
         f"{total_cpu * per:.3f}" if measured else "-"]
    )
    print_table(["stage", "samples", "of samples", f"of {what}", f"{what} ms per request"], rows)


def top_frames(stacks: list[Stack], bucket: str, n: int) -> list[tuple[str, int]]:
    """The leaf frames most sampled in one bucket (to check and refine the rules)."""
    leaves: Counter[str] = Counter()
    for stack in stacks:
        if classify(stack) == bucket and stack.frames:
            leaves[stack.frames[-1]] += stack.samples
    return leaves.most_common(n)


def record_command(
    py_spy: str, pid: int, seconds: int, output: Path, mode: str, rate: int
) -> list[str]:
    return [
        py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--threads", *MODES[mode],
        "--format", "raw", "--duration", str(seconds),
        "--output", str(output),
    ]


def record(
    py_spy: str, pid: int, seconds: int, output: Path, mode: str, rate: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        record_command(py_spy, pid, seconds, output, mode, rate),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def profile(args: argparse.Namespace, wrk: str, py_spy: str, output: Path) -> Measured:
    """Set up, start ours, warm up, record during the timed run; what the run measured."""
    with ExitStack() as stack:
        database_url = None
        if args.backend == "postgres":
            dsn = test_dsn()
            if postgres_reachable(dsn) is None:
                raise SystemExit(2)
            schema = f"bench_{datetime.now(UTC):%H%M%S}"
            stack.callback(drop_schema, dsn, schema)
            database_url = with_schema(dsn, schema)
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="civicvault-bench-")))
        fixture = set_up(root, args.residents, database_url)
        paths = write_paths(fixture, root)
        env = wrk_environment(fixture)
        ours = stack.enter_context(running_ours(fixture, root, 1))
        check_answers(ours, fixture.documents, {"Authorization": f"Bearer {fixture.token}"})
        run_wrk(wrk, ours, paths[True], args.connections, args.warmup, env)
        spy = record(py_spy, ours.process.pid, args.duration, output, args.mode, args.rate)
        time.sleep(0.5)  # py-spy attaches before the load starts
        before, total_before = thread_cpu(ours)
        run: WrkRun = run_wrk(wrk, ours, paths[True], args.connections, args.duration, env)
        after, total_after = thread_cpu(ours)
        _, errors = spy.communicate(timeout=args.duration + 60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy exited with {spy.returncode}: {errors.decode()[-2000:]}")
        if run.failed:
            raise RuntimeError(f"ours failed under load: {run.failures()}")
        print(
            f"  profiled run: {run.rate:,.0f} req/s, p50 {run.p_ms('p50'):.1f} ms, server CPU "
            f"{run.cpu_ms(run.server_cpu):.2f} ms per request, wrk CPU "
            f"{run.cpu_ms(run.client_cpu):.2f} ms"
        )
        return Measured(
            requests=run.ok,
            rate=run.rate,
            cpu_by_thread={tid: cpu - before.get(tid, 0.0) for tid, cpu in after.items()},
            cpu_total=total_after - total_before,
        )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--duration", type=int, help="profiled seconds (10; --quick 3)")
    parser.add_argument("--warmup", type=int, help="seconds of load before (2; --quick 1)")
    parser.add_argument("--quick", action="store_true", help="1 s warm-up + 3 s profiled")
    parser.add_argument("--residents", type=int, default=RESIDENTS)
    parser.add_argument(
        "--connections", type=int, default=SPREAD_ROW.connections,
        help=f"wrk's connections ({SPREAD_ROW.connections}; 1 for the latency row)",
    )
    parser.add_argument("--output", type=Path, default=Path("fetch-profile.folded"))
    parser.add_argument("--stacks", type=Path, help="re-read folded stacks; no run")
    parser.add_argument(
        "--mode", choices=tuple(MODES), default="cpu",
        help="cpu: threads at work, weighted by each thread's CPU (default); gil: only the "
        "thread holding the GIL (py-spy --gil); native: every thread with its C frames, what "
        "each waits for (blocking, slow)",
    )
    parser.add_argument(
        "--rate", type=int,
        help=f"samples per second ({RATE}; {NATIVE_RATE} with --mode native)",
    )
    parser.add_argument("--top", type=int, default=0, help="print each bucket's N top leaves")
    args = parser.parse_args(argv)
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    if args.residents < args.connections:
        parser.error(f"--residents must be at least {args.connections}")
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.rate is None:
        args.rate = NATIVE_RATE if args.mode == "native" else RATE
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)

    measured: Measured | None = None
    if args.stacks is None:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
        wrk = shutil.which("wrk")
        if wrk is None:
            print(f"wrk is not installed: {INSTALL_WRK}", file=sys.stderr)
            return 2
        if py_spy is None:
            print("py-spy is not installed: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
            return 2
        command = [os.path.relpath(sys.executable), "-m", "bench.profile_fetch", *sys.argv[1:]]
        print(f"civicvault fetch profile, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(f"command: {shlex.join(command)}")
        spy = record_command(py_spy, 0, args.duration, args.output, args.mode, args.rate)
        print(f"py-spy: {shlex.join(spy)} (0: the server's pid)")
        print(f"load average {load_average()} at the start")
        measured = profile(args, wrk, py_spy, args.output)
        print(f"load average {load_average()} at the end; folded stacks in {args.output}")
        args.stacks = args.output
    stacks = parse_folded(args.stacks.read_bytes().decode(errors="replace"))
    print()
    if args.mode == "gil":
        print_breakdown(gil_breakdown(stacks, args.rate), measured, "GIL")
    elif args.mode == "native":
        states_table(stacks)
    else:
        if measured is not None:
            group_table(stacks, measured)
            print()
        print_breakdown(breakdown(stacks, measured), measured)
    for bucket in (*BUCKETS, WAITING) if args.top else ():
        print(f"\n{bucket}:")
        for frame, n in top_frames(stacks, bucket, args.top):
            print(f"  {n:6,}  {frame}")
    return 0


if __name__ == "__main__":
    stopping.run(main)
