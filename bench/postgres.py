"""PostgreSQL helpers shared by the benchmarks: reachability, schemas, redacted DSNs."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def test_dsn() -> str:
    """The server the benchmarks use: the test suite's, else the machine's default."""
    return os.environ.get("CIVICVAULT_TEST_POSTGRES_DSN", DEFAULT_DSN)


def postgres_reachable(dsn: str) -> str | None:
    """The server version, or None (with the reason printed) if it cannot be reached."""
    try:
        import psycopg
    except ImportError:
        print("PostgreSQL: skipped (psycopg is not installed; install the postgres extra)")
        return None
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"
    except psycopg.Error as e:
        print(f"PostgreSQL: skipped, {redact(dsn)} is unreachable: {str(e).strip()}")
        return None


def redact(dsn: str) -> str:
    url = urlparse(dsn)
    if url.password:
        netloc = url.netloc.replace(f":{url.password}@", ":***@")
        return urlunparse(url._replace(netloc=netloc))
    return dsn


def with_schema(dsn: str, schema: str) -> str:
    url = urlparse(dsn)
    query = [*parse_qsl(url.query), ("schema", schema)]
    return urlunparse(url._replace(query=urlencode(query)))


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
