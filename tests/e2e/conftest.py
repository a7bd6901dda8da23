"""A real HTTP server on a loopback port, over a vault on the embedded default (SQLite file and
blob directory) or on the production stack (PostgreSQL and an S3 server)."""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from adapters.http.app import create_app
from adapters.http.server import server_config
from adapters.settings import Settings
from adapters.wiring import Services, open_services
from keys.master import MasterKey
from keys.tokens import Role, issue_token

TLS = ssl.create_default_context()
"""One TLS context for every test client (the servers are plain HTTP on loopback; httpx
would otherwise build a context, some 35 ms, for each client)."""


@dataclass
class LiveApi:
    """A live server, and clients that read their own writes: each request asks for the
    read models to have reached the latest log position any response has reported."""

    base_url: str
    services: Services
    app: Any
    seen_position: int = 0

    def _remember(self, response: httpx.Response) -> None:
        position = response.headers.get("x-log-position")
        if position is not None:
            self.seen_position = max(self.seen_position, int(position))

    def _ask_for_seen(self, request: httpx.Request) -> None:
        if self.seen_position and "x-min-log-position" not in request.headers:
            request.headers["X-Min-Log-Position"] = str(self.seen_position)

    def token(
        self, role: Role, subject: str, department: str | None = None, **overrides: Any
    ) -> str:
        settings = self.services.settings
        args: dict[str, Any] = {
            "role": role,
            "subject": subject,
            "department": department,
            "ttl": timedelta(minutes=10),
            "issuer": settings.token_issuer,
            "audience": settings.token_audience,
            "now": self.services.clock.now(),
        }
        args.update(overrides)
        return issue_token(self.services.signing.current("tokens"), **args)

    def client(
        self, role: Role | None = None, subject: str = "", department: str | None = None,
        **claims: Any,
    ) -> httpx.Client:
        headers = {}
        if role is not None:
            token = self.token(role, subject, department, **claims)
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=30,
            verify=TLS,
            event_hooks={"request": [self._ask_for_seen], "response": [self._remember]},
        )


def _serve(
    app: Any, before_serving: Callable[[], None] | None = None
) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve ``app`` on a loopback port from a thread of its own, which first runs
    ``before_serving`` (as ``serve --demo`` seeds in the thread that then serves)."""
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=0))

    def run() -> None:
        if before_serving is not None:
            before_serving()
        server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the HTTP server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def live_api_factory(tmp_path: Path) -> Iterator[Callable[..., LiveApi]]:
    started: list[tuple[uvicorn.Server, threading.Thread, Services]] = []

    def start(
        *, before_serving: Callable[[Services], None] | None = None, clock: Any = None,
        **settings: Any,
    ) -> LiveApi:
        services = open_services(
            Settings(
                data_dir=tmp_path / f"api-{len(started)}",
                master_key=MasterKey.generate().to_base64(),
                **settings,
            ),
            clock=clock,
        )
        app = create_app(services)
        first = None if before_serving is None else (lambda: before_serving(services))
        server, thread, url = _serve(app, first)
        started.append((server, thread, services))
        return LiveApi(url, services, app)

    yield start
    for server, thread, services in started:
        server.should_exit = True
        thread.join(10)
        services.close()


STACKS = ("embedded", "postgres-s3")


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings that put a server on each stack the product runs on: nothing for the
    embedded default; a schema of its own and a bucket of its own on the real servers."""
    if request.param == "embedded":
        return {}
    return {
        "database_url": request.getfixturevalue("postgres_schema_url"),
        "s3_endpoint": request.getfixturevalue("s3_endpoint"),
        "s3_access_key": "civicvault",
        "s3_secret_key": "civicvault-secret",
        "s3_bucket": f"t-{uuid.uuid4().hex[:12]}",
        "s3_secure": False,
    }


@pytest.fixture
def api(stack: dict[str, Any], live_api_factory: Callable[..., LiveApi]) -> LiveApi:
    """A server on each stack: every test that takes it runs on both. (``stack`` comes first
    so that the server stops before its schema is dropped.)"""
    return live_api_factory(**stack)
