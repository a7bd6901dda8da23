"""The read-model tables, one set per generation, so a rebuild can fill a fresh set while
the live one keeps serving, then take its place in one step."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from projections.database import Database, Run
from projections.tables import ACCESS, TABLES, exists

TRACKING = "cv_view_tracking"
GENERATION = "cv_view_generation"
PROJECTION = "views"
_TABLES = {table.view: table for table in TABLES}


def view_table(db: Database, view: str, generation: int) -> str:
    """The table of a view (``"library"``, …) in a generation, as statements name it."""
    return _TABLES[view].name(db, generation)


def create_common(db: Database) -> None:
    """The tables every generation shares: positions reached, and which generation serves."""
    with db.transaction() as run:
        run.schema_lock()
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
    for table in TABLES:
        table.create(run, db, generation, keyed=access_keyed or table is not ACCESS)


def add_missing_columns(run: Run, db: Database, generation: int) -> None:
    """Bring a generation made by an earlier version up to the tables described now."""
    for table in TABLES:
        table.add_missing_columns(run, db, generation)


def key_access_log(run: Run, db: Database, generation: int) -> None:
    """Give an access log created without them (``create_generation(…,
    access_keyed=False)``) the keys and indexes it would have had from the start."""
    ACCESS.add_keys(run, db, generation)


def drop_generation(run: Run, db: Database, generation: int) -> None:
    """The generation's tables and position, gone. Its tracking row first: a follower
    that is committing a batch to it holds that row, then the tables, and this takes
    them in the same order, so it waits for the batch instead of deadlocking with it."""
    run(f"DELETE FROM {db.table(TRACKING)} WHERE name = ? AND generation = ?",
        (PROJECTION, generation))
    for table in TABLES:
        run(f"DROP TABLE IF EXISTS {table.name(db, generation)}")


def generation_exists(run: Run, db: Database, generation: int) -> bool:
    """Whether the generation's tables are there (they are made in one transaction)."""
    return exists(run, db, ACCESS.name(db, generation), "table")


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
