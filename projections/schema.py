"""The read-model tables, one set per generation, so a rebuild can fill a fresh set while
the live one keeps serving, then take its place in one step."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from projections.sql import Database, Run

TRACKING = "cv_view_tracking"
GENERATION = "cv_view_generation"
PROJECTION = "views"
VIEWS = ("residents", "library", "consents", "access")


def view_table(db: Database, view: str, generation: int) -> str:
    return db.table(f"cv_{view}_g{generation}")


def create_common(db: Database) -> None:
    """The tables every generation shares: positions reached, and which generation serves."""
    with db.transaction() as run:
        run(
            f"CREATE TABLE IF NOT EXISTS {db.table(TRACKING)} ("
            "name TEXT NOT NULL, generation INTEGER NOT NULL, position BIGINT NOT NULL, "
            "PRIMARY KEY (name, generation))"
        )
        run(
            f"CREATE TABLE IF NOT EXISTS {db.table(GENERATION)} ("
            "name TEXT PRIMARY KEY, generation INTEGER NOT NULL)"
        )
        run(
            f"INSERT INTO {db.table(GENERATION)} (name, generation) VALUES (?, 1) "
            "ON CONFLICT (name) DO NOTHING",
            (PROJECTION,),
        )


def create_generation(
    run: Run, db: Database, generation: int, *, access_keyed: bool = True
) -> None:
    """The views' tables for one generation, unless they are there already.
    ``access_keyed=False`` leaves the access log without its keys and indexes, for a
    rebuild to load in bulk and then key (:func:`key_access_log`; PostgreSQL only): rows
    go in without four indexes to keep up, and the keys are built once, sorted, at the
    end."""
    residents = view_table(db, "residents", generation)
    library = view_table(db, "library", generation)
    consents = view_table(db, "consents", generation)
    access = view_table(db, "access", generation)
    blob = db.blob
    run(
        f"CREATE TABLE IF NOT EXISTS {residents} ("
        "resident_id TEXT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE, "
        f"personal {blob}, erased INTEGER NOT NULL DEFAULT 0)"
    )
    run(
        f"CREATE TABLE IF NOT EXISTS {library} ("
        "document_id TEXT PRIMARY KEY, resident_id TEXT NOT NULL, position BIGINT NOT NULL, "
        f"doc_type TEXT NOT NULL, personal {blob}, content_type TEXT NOT NULL, "
        "size BIGINT NOT NULL, trust_level TEXT NOT NULL, issuer TEXT, status TEXT NOT NULL, "
        "expires_at TEXT, created_at TEXT NOT NULL, replaces TEXT, superseded_by TEXT, "
        "reuse_count INTEGER NOT NULL DEFAULT 0)"
    )
    run(
        f"CREATE INDEX IF NOT EXISTS cv_library_g{generation}_resident "
        f"ON {library} (resident_id, position)"
    )
    run(
        f"CREATE TABLE IF NOT EXISTS {consents} ("
        "consent_id TEXT PRIMARY KEY, resident_id TEXT NOT NULL, position BIGINT NOT NULL, "
        "department TEXT NOT NULL, doc_types TEXT NOT NULL, purpose TEXT NOT NULL, "
        "valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, max_uses INTEGER, "
        "uses INTEGER NOT NULL DEFAULT 0, revoked_at TEXT, granted_at TEXT NOT NULL)"
    )
    run(
        f"CREATE INDEX IF NOT EXISTS cv_consents_g{generation}_resident "
        f"ON {consents} (resident_id, position)"
    )
    run(
        f"CREATE INDEX IF NOT EXISTS cv_consents_g{generation}_department "
        f"ON {consents} (department, position)"
    )
    run(
        f"CREATE TABLE IF NOT EXISTS {access} ("
        "access_id TEXT NOT NULL, position BIGINT NOT NULL, "
        "resident_id TEXT NOT NULL, officer TEXT NOT NULL, department TEXT NOT NULL, "
        "document_id TEXT NOT NULL, doc_type TEXT, purpose TEXT NOT NULL, consent_id TEXT, "
        "allowed INTEGER NOT NULL, reason_codes TEXT NOT NULL, personal "
        f"{blob}, policy_version TEXT NOT NULL, rule TEXT, request_id TEXT NOT NULL, "
        "at TEXT NOT NULL"
        + (", PRIMARY KEY (access_id), UNIQUE (position))" if access_keyed else ")")
    )
    if access_keyed:
        _index_access_log(run, access, generation)


def key_access_log(run: Run, db: Database, generation: int) -> None:
    """Give an access log created without them (``create_generation(…,
    access_keyed=False)``) the keys and indexes it would have had from the start."""
    access = view_table(db, "access", generation)
    run(f"ALTER TABLE {access} ADD PRIMARY KEY (access_id), ADD UNIQUE (position)")
    _index_access_log(run, access, generation)


def _index_access_log(run: Run, access: str, generation: int) -> None:
    run(
        f"CREATE INDEX IF NOT EXISTS cv_access_g{generation}_resident "
        f"ON {access} (resident_id, position)"
    )
    run(
        f"CREATE INDEX IF NOT EXISTS cv_access_g{generation}_department "
        f"ON {access} (department, position)"
    )


def drop_generation(run: Run, db: Database, generation: int) -> None:
    """The generation's tables and position, gone. Its tracking row first: a follower
    that is committing a batch to it holds that row, then the tables, and this takes
    them in the same order, so it waits for the batch instead of deadlocking with it."""
    run(f"DELETE FROM {db.table(TRACKING)} WHERE name = ? AND generation = ?",
        (PROJECTION, generation))
    for view in VIEWS:
        run(f"DROP TABLE IF EXISTS {view_table(db, view, generation)}")


def generation_exists(run: Run, db: Database, generation: int) -> bool:
    """Whether the generation's tables are there (they are made in one transaction)."""
    access = view_table(db, "access", generation)
    if db.sqlite:
        return bool(run("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (access,)))
    [(found,)] = run("SELECT to_regclass(?) IS NOT NULL", (access,))
    return bool(found)


def lock_active_generation(run: Run, db: Database) -> int:
    """:func:`active_generation`, with its row locked to the end of the transaction (on
    SQLite, the database's one write lock), so no rebuild puts another in service
    meanwhile."""
    [(generation,)] = run.locked(db.table(GENERATION), "generation", "name = ?", (PROJECTION,))
    return int(generation)


def active_generation(run: Run, db: Database) -> int:
    rows = run(f"SELECT generation FROM {db.table(GENERATION)} WHERE name = ?", (PROJECTION,))
    return int(rows[0][0])


def position(run: Run, db: Database, generation: int) -> int:
    rows = run(
        f"SELECT position FROM {db.table(TRACKING)} WHERE name = ? AND generation = ?",
        (PROJECTION, generation),
    )
    return int(rows[0][0]) if rows else 0


def set_position(run: Run, db: Database, generation: int, value: int) -> None:
    run(
        f"INSERT INTO {db.table(TRACKING)} (name, generation, position) VALUES (?, ?, ?) "
        "ON CONFLICT (name, generation) DO UPDATE SET position = excluded.position",
        (PROJECTION, generation, value),
    )


def stamp(moment: datetime | None) -> str | None:
    """A time as fixed-width UTC text, so that text order is time order."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    # The year padded by hand: strftime's %Y leaves years before 1000 short.
    return f"{utc.year:04d}{utc.strftime('-%m-%dT%H:%M:%S.%fZ')}"


_UTC_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def stamp_iso(text: str | None) -> str | None:
    """A time written by :meth:`datetime.isoformat`, as :func:`stamp` writes the time:
    a UTC time with microseconds (nearly every one) is rewritten as text, any other is
    parsed first."""
    if text is None:
        return None
    if _UTC_ISO.fullmatch(text) is not None:
        return f"{text[:26]}Z"
    return stamp(datetime.fromisoformat(text))


def unstamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
