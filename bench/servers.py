"""Servers under test, each in its own process: started, waited for, measured with psutil, stopped.

A server is a command (a bench module re-run with its hidden ``--serve`` option) that runs
``uvicorn.run`` with ``workers`` processes. It is measured only once it answers, and with
several workers only once every worker has accepted a connection, since a keep-alive
connection stays with the worker that accepted it. It is stopped by its pid (terminate, then
kill after 10 s; then any worker left behind), even on error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]

HOST = "127.0.0.1"
READY_SECONDS = 60.0
STOP_SECONDS = 10.0
PROBES_PER_WORKER = 8  # probe connections opened per worker per round while waiting for all


@dataclass
class Server:
    """A running server process, its port and its log."""

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

    def exited(self) -> bool:
        return self.process.poll() is not None

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
    name: str,
    command: Sequence[str],
    workers: int,
    env: dict[str, str],
    ready_path: str,
    log: Path,
) -> Iterator[Server]:
    """Start ``command`` plus ``--port <free port>``; wait until every worker answers; stop
    it after."""
    port = free_port()
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
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
        if server.exited():
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
