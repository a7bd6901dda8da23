"""Running one benchmark on the embedded default and on PostgreSQL, in a scratch directory."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.postgres import postgres_reachable, test_dsn

R = TypeVar("R")


def on_each_backend(
    run_sqlite: Callable[[Path], R],
    run_postgres: Callable[[str, str, Path], R],
    report: Callable[[R], None],
    *,
    with_postgres: bool,
) -> list[R]:
    """SQLite first, then PostgreSQL if wanted and reachable; each result is reported at once."""
    results: list[R] = []
    with tempfile.TemporaryDirectory(prefix="civicvault-bench-") as tmp:
        results.append(run_sqlite(Path(tmp)))
        report(results[-1])
        if not with_postgres:
            print("PostgreSQL: skipped (--no-postgres)")
            return results
        dsn = test_dsn()
        server = postgres_reachable(dsn)
        if server is not None:
            results.append(run_postgres(dsn, server, Path(tmp)))
            report(results[-1])
    return results
