"""Running one benchmark on the embedded default and on PostgreSQL, in a scratch directory."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr

from adapters.settings import Settings
from adapters.wiring import Services, open_services
from bench.postgres import drop_schema, postgres_reachable, redact, test_dsn, with_schema
from keys.master import MasterKey

R = TypeVar("R")


def on_each_backend(
    run_sqlite: Callable[[Path], R],
    run_postgres: Callable[[str, str, Path], R],
    report: Callable[[R], None],
    *,
    with_postgres: bool,
    with_sqlite: bool = True,
) -> list[R]:
    """SQLite first (if wanted), then PostgreSQL if wanted and reachable; each result is
    reported at once."""
    results: list[R] = []
    with tempfile.TemporaryDirectory(prefix="civicvault-bench-") as tmp:
        if with_sqlite:
            results.append(run_sqlite(Path(tmp)))
            report(results[-1])
        else:
            print("SQLite: skipped (--no-sqlite)")
        if not with_postgres:
            print("PostgreSQL: skipped (--no-postgres)")
            return results
        dsn = test_dsn()
        server = postgres_reachable(dsn)
        if server is not None:
            results.append(run_postgres(dsn, server, Path(tmp)))
            report(results[-1])
    return results


def scratch_settings(data_dir: Path, database_url: str | None = None) -> Settings:
    """The embedded defaults in ``data_dir`` (a fresh master key, local blobs), or
    PostgreSQL at ``database_url``."""
    return Settings(
        data_dir=data_dir,
        master_key=SecretStr(MasterKey.generate().to_base64()),
        database_url=database_url,
        s3_endpoint=None,
    )


@dataclass(frozen=True)
class Scratch:
    """An open vault on a scratch store, and where that store is."""

    services: Services
    settings: Settings
    where: str  # a note for the report
    schema: str | None = None  # PostgreSQL only


@contextmanager
def sqlite_services(root: Path) -> Iterator[Scratch]:
    """A vault on a fresh SQLite file under ``root``, closed after."""
    settings = scratch_settings(root / "sqlite")
    services = open_services(settings)
    try:
        yield Scratch(services, settings, f"database {settings.sqlite_path}")
    finally:
        services.close()


@contextmanager
def postgres_services(dsn: str, server: str, root: Path) -> Iterator[Scratch]:
    """A vault on a fresh schema of the PostgreSQL at ``dsn``, closed and the schema dropped
    after, even on error."""
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        settings = scratch_settings(root / "postgres", with_schema(dsn, schema))
        services = open_services(settings)
        try:
            yield Scratch(
                services,
                settings,
                f"server {server} at {redact(dsn)}, schema {schema} (dropped at the end)",
                schema,
            )
        finally:
            services.close()
    finally:
        drop_schema(dsn, schema)
