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


VACUUM_THRESHOLD, VACUUM_SCALE_FACTOR = 50, 0.2
ANALYZE_THRESHOLD, ANALYZE_SCALE_FACTOR = 50, 0.1
"""autovacuum's defaults (``autovacuum_vacuum_threshold`` and ``…_scale_factor``, the same
for analyze)."""


def autovacuum(dsn: str, schema: str) -> tuple[int, int]:
    """What autovacuum would do now to the schema's tables, at its default settings, on a
    server that runs it: VACUUM a table whose dead rows exceed 50 + 20% of its rows, ANALYZE
    one whose rows changed since its last analysis exceed 50 + 10% (the counters of
    ``pg_stat_user_tables``). A benchmark whose tables grow from nothing calls it between
    its timed stretches, untimed: a test server may run without autovacuum, and then the
    planner, with no statistics, misjudges point reads as large (a parallel scan with JIT
    compilation for the 20 rows of four documents, 100 ms instead of a fraction of one)
    and dead rows pile up in the tables the read models update. Returns the tables
    vacuumed and analyzed."""
    import psycopg
    from psycopg import sql

    vacuumed = analyzed = 0
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze "
            "FROM pg_stat_user_tables WHERE schemaname = %s",
            (schema,),
        ).fetchall()
        for table, live, dead, changed in rows:
            vacuum = dead > VACUUM_THRESHOLD + VACUUM_SCALE_FACTOR * live
            analyze = changed > ANALYZE_THRESHOLD + ANALYZE_SCALE_FACTOR * live
            if not (vacuum or analyze):
                continue
            verb = "VACUUM (ANALYZE)" if vacuum and analyze else "VACUUM" if vacuum else "ANALYZE"
            conn.execute(
                sql.SQL(verb + " {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            )
            vacuumed += vacuum
            analyzed += analyze
    return vacuumed, analyzed
