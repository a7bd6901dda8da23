"""Two API processes, each following the log, and a `projections run` worker, all on one
PostgreSQL: residents upload through one process and read their own writes through the
other; every use, reuse and access attempt is in the views exactly once; and the views
equal a rebuild from zero, made while the three keep following."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.samples import sample_pdf
from adapters.settings import Settings
from adapters.wiring import Services, open_services
from keys.master import MasterKey
from tests.e2e.conftest import LiveApi
from tests.support import free_port

RESIDENTS = 6
DOC_TYPES = ("id-card", "household-register", "income-proof")  # civil-affairs may fetch each
PURPOSE = "subsistence-allowance"


class Processes:
    """Processes of the command line, started with one environment and stopped by pid."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"process-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        return process

    def stop(self) -> list[int | None]:
        for process in self.started:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        codes = []
        for process in self.started:
            try:
                codes.append(process.wait(20))
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                codes.append(process.wait())
        return codes

    def output(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("process-*.log")))


def _wait_ready(url: str, processes: Processes) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not become ready:\n{processes.output()}")


@pytest.fixture
def shared(postgres_schema_url: str, tmp_path: Path) -> Iterator[tuple[Services, Processes]]:
    key = MasterKey.generate().to_base64()
    blobs = tmp_path / "data"  # one blob directory on this machine, for every process
    services = open_services(
        Settings(data_dir=blobs, master_key=key, database_url=postgres_schema_url)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICVAULT_")}
    env.update(
        CIVICVAULT_DATABASE_URL=postgres_schema_url,
        CIVICVAULT_MASTER_KEY=key,
        CIVICVAULT_DATA_DIR=str(blobs),
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = Processes(env, logs)
    try:
        yield services, processes
    finally:
        processes.stop()
        services.close()


def _resident_journey(
    n: int, apis: list[LiveApi], failures: list[str], fetched: dict[str, int]
) -> None:
    """Upload through one process, read it back through the other; the civil-affairs
    office fetches each document through both; housing is denied each time."""
    resident = f"r{n}"

    def client(api: LiveApi, role: Any, subject: str, department: str | None = None) -> Any:
        token = api.token(role, subject, department)
        return httpx.Client(
            base_url=api.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    me = [client(api, "resident", resident) for api in apis]
    civil = [client(api, "officer", f"o{n}", "civil-affairs") for api in apis]
    housing = client(apis[1], "officer", f"h{n}", "housing")
    granted = me[n % 2].post(
        "/v1/me/consents",
        json={
            "department": "civil-affairs",
            "doc_types": list(DOC_TYPES),
            "purpose": PURPOSE,
            "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        },
    )
    if granted.status_code != 201:
        failures.append(f"{resident}: consent {granted.status_code} {granted.text}")
        return
    position = granted.headers["X-Log-Position"]
    for round_, doc_type in enumerate(DOC_TYPES):
        writer, reader = me[(n + round_) % 2], me[(n + round_ + 1) % 2]
        uploaded = writer.post(
            "/v1/me/documents",
            data={"doc_type": doc_type, "title": f"{doc_type} {n}"},
            files={"file": ("d.pdf", sample_pdf(), "application/pdf")},
        )
        if uploaded.status_code != 201:
            failures.append(f"{resident}: upload {uploaded.status_code} {uploaded.text}")
            return
        document_id = uploaded.json()["document_id"]
        position = uploaded.headers["X-Log-Position"]
        listed = reader.get("/v1/me/documents", headers={"X-Min-Log-Position": position})
        if document_id not in {d["document_id"] for d in listed.json()["items"]}:
            failures.append(f"{resident}: upload through one process not read through the other")
        url = f"/v1/residents/{resident}/documents/{document_id}/content"
        for office in civil:
            response = office.get(url, params={"purpose": PURPOSE})
            if response.status_code != 200:
                failures.append(f"{resident}: civil-affairs fetch {response.status_code}")
            fetched[document_id] = fetched.get(document_id, 0) + 1
        denied = housing.get(url, params={"purpose": "housing-subsidy"})
        if denied.status_code != 403:
            failures.append(f"{resident}: housing fetch {denied.status_code}")
        position = denied.headers["X-Log-Position"]
    log = me[n % 2].get("/v1/me/access-log", headers={"X-Min-Log-Position": position})
    if len(log.json()["items"]) != 3 * len(DOC_TYPES):
        failures.append(f"{resident}: access log {log.json()['items']}")


def _views_of(services: Services) -> dict[str, Any]:
    """Every resident's library, consents and access log as the views hold them."""
    views = services.views
    now = services.clock.now()
    return {
        f"r{n}": (
            sorted(
                (e.document_id, e.doc_type, e.trust_level, e.status, e.reuse_count)
                for e in views.library(f"r{n}", limit=100, everything=True)
            ),
            sorted(
                (c.consent_id, c.uses, c.status(now))
                for c in views.consents(f"r{n}", limit=100)
            ),
            sorted(
                (a.access_id, a.department, a.document_id, a.allowed, a.reason_codes)
                for a in views.access_log(f"r{n}", limit=100)
            ),
        )
        for n in range(RESIDENTS)
    }


@pytest.mark.slow
def test_two_api_processes_and_a_worker_follow_one_postgresql_exactly_once(
    shared: tuple[Services, Processes],
) -> None:
    services, processes = shared
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    for url in urls:
        processes.start("serve", "--port", url.rsplit(":", 1)[1])
    worker = processes.start("projections", "run")
    for url in urls:
        _wait_ready(url, processes)
    apis = [LiveApi(url, services, None) for url in urls]
    platform = httpx.Client(
        base_url=urls[0],
        headers={"Authorization": f"Bearer {apis[0].token('credit-platform', 'platform')}"},
    )
    graded = platform.post(
        "/v1/credit/grades",
        json={
            "updates": [
                {"resident_id": f"r{n}", "grade": "A", "sequence": 1,
                 "effective_at": datetime.now(UTC).isoformat()}
                for n in range(RESIDENTS)
            ]
        },
    )
    assert graded.status_code == 200, graded.text

    failures: list[str] = []
    fetched: dict[str, int] = {}

    def journey(n: int) -> None:
        try:
            _resident_journey(n, apis, failures, fetched)
        except Exception as e:  # a thread's error would otherwise only be a warning
            failures.append(f"r{n}: {e!r}")

    threads = [threading.Thread(target=journey, args=(n,)) for n in range(RESIDENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [], processes.output()

    head = services.events.head()
    assert services.view_runner.wait_for(head, timeout=30)
    followed = _views_of(services)
    for n in range(RESIDENTS):
        library, consents, accesses = followed[f"r{n}"]
        assert sorted((doc_type, uses) for _, doc_type, _, _, uses in library) == sorted(
            (doc_type, 2) for doc_type in DOC_TYPES
        )
        assert all(fetched[document_id] == 2 for document_id, *_ in library)
        assert [(uses, status) for _, uses, status in consents] == [(2 * len(DOC_TYPES), "active")]
        assert sorted(department for _, department, *_ in accesses) == sorted(
            ["civil-affairs"] * 2 * len(DOC_TYPES) + ["housing"] * len(DOC_TYPES)
        )
    assert services.view_runner.rebuild() == head  # the three processes keep following
    assert _views_of(services) == followed

    assert worker.poll() is None, processes.output()  # still following, until stopped
    # Each stops gracefully on SIGTERM (not killed after 20 s); uvicorn then exits by the
    # signal it caught, as process managers expect, the worker with 0.
    codes = processes.stop()
    assert codes == [-signal.SIGTERM, -signal.SIGTERM, 0], (codes, processes.output()[-3000:])
