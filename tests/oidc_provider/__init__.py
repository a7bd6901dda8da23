"""A real OpenID Provider for the tests: django-oauth-toolkit (PyPI, the ``test`` extra)
served by uvicorn on 127.0.0.1, its state in a folder of its own. :func:`start_provider`
runs it in a process of its own and waits until its discovery document answers;
:func:`stop_provider` stops that process by its pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Client:
    """A relying party registered at the provider."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class Provider:
    issuer: str
    pid: int
    state: Path

    @property
    def origin(self) -> str:
        return self.issuer.removesuffix("/o")


def start_provider(state: Path, people: dict[str, dict[str, Any]],
                   clients: list[Client]) -> Provider:
    """The provider, serving; ``people`` maps each username to its ``password`` and the
    ``claims`` its ID tokens carry."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "people.json").write_text(json.dumps(people, ensure_ascii=False))
    (state / "clients.json").write_text(json.dumps(
        [{"client_id": c.client_id, "client_secret": c.client_secret,
          "redirect_uris": list(c.redirect_uris),
          "post_logout_redirect_uris": list(c.post_logout_redirect_uris)} for c in clients]))
    port = _free_port()
    with (state / "provider.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.oidc_provider.run", str(state), str(port)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    provider = Provider(f"http://127.0.0.1:{port}/o", process.pid, state)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the provider exited: {(state / 'provider.log').read_text()}")
        try:
            if httpx.get(f"{provider.issuer}/.well-known/openid-configuration",
                         timeout=2).status_code == 200:
                return provider
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_provider(provider)
    raise RuntimeError(f"the provider did not start: {(state / 'provider.log').read_text()}")


def stop_provider(provider: Provider) -> None:
    """Stops the provider's process (by its pid) and waits for it to end."""
    try:
        os.kill(provider.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(provider.pid, os.WNOHANG)
        except ChildProcessError:
            return
        if finished:
            return
        time.sleep(0.1)
    os.kill(provider.pid, signal.SIGKILL)
    os.waitpid(provider.pid, 0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
