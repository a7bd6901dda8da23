"""Key tables: wrapped keys stored beside the events (same database), never in the event log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from eventsourcing.persistence import InfrastructureFactory

from adapters.sql import Database, Run
from keys.store import KeyKind, Rewrap, SigningKeyRecord, WrappedResidentKey

RESIDENT_KEYS = "civicvault_resident_keys"
SIGNING_KEYS = "civicvault_signing_keys"


class SqlKeyTable:
    """A :class:`keys.store.KeyTable` on the event store's own SQLite or PostgreSQL database.

    A key is read on nearly every operation that opens personal fields, so single reads go
    through :meth:`adapters.sql.Database.read`: on PostgreSQL one round trip, not three
    (BEGIN, SELECT, ROLLBACK). The ROLLBACK also cost more than its round trip: psycopg
    forgets every statement it has prepared on a connection when a ROLLBACK passes through
    it, so each key read made the event store's next statements on that connection be
    planned afresh."""

    def __init__(self, datastore: Any) -> None:
        self._db = Database(datastore)
        self._datastore = datastore
        self._sqlite = self._db.sqlite
        self._residents = self._db.table(RESIDENT_KEYS)
        self._signing = self._db.table(SIGNING_KEYS)
        blob = self._db.blob
        with self._transaction() as run:
            run.schema_lock()
            run(
                f"CREATE TABLE IF NOT EXISTS {self._residents} ("
                "resident_id TEXT PRIMARY KEY, "
                f"wrapped_key {blob}, "
                "master_key_id TEXT NOT NULL, "
                "created_at TEXT NOT NULL, "
                "shredded_at TEXT)"
            )
            run(
                f"CREATE TABLE IF NOT EXISTS {self._signing} ("
                "kid TEXT PRIMARY KEY, "
                "purpose TEXT NOT NULL, "
                f"public_key {blob} NOT NULL, "
                f"wrapped_private {blob} NOT NULL, "
                "master_key_id TEXT NOT NULL, "
                "created_at TEXT NOT NULL, "
                "retired_at TEXT)"
            )

    @classmethod
    def for_factory(cls, factory: InfrastructureFactory[Any]) -> SqlKeyTable:
        datastore = getattr(factory, "datastore", None)
        if datastore is None:
            raise TypeError(f"{type(factory).__name__} has no SQL datastore")
        return cls(datastore)

    def add_resident_key(
        self, resident_id: str, wrapped: bytes, master_key_id: str, at: datetime
    ) -> bool:
        return self.add_resident_keys(
            [WrappedResidentKey(resident_id, wrapped, master_key_id, at, None)]
        ) == 1

    def add_resident_keys(self, keys: Sequence[WrappedResidentKey]) -> int:
        inserted = 0
        with self._transaction() as run:
            for key in keys:
                row = (key.resident_id, key.wrapped, key.master_key_id, key.created_at.isoformat())
                inserted += len(
                    run(
                        f"INSERT INTO {self._residents} "
                        "(resident_id, wrapped_key, master_key_id, created_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (resident_id) DO NOTHING RETURNING resident_id",
                        row,
                    )
                )
        return inserted

    def resident_key(self, resident_id: str) -> WrappedResidentKey | None:
        with self._db.read() as run:
            rows = run(
                "SELECT resident_id, wrapped_key, master_key_id, created_at, shredded_at "
                f"FROM {self._residents} WHERE resident_id = ?",
                (resident_id,),
            )
        return _resident_row(rows[0]) if rows else None

    def resident_keys(self, resident_ids: Sequence[str]) -> list[WrappedResidentKey]:
        rows: list[Any] = []
        with self._db.read() as run:
            for start in range(0, len(resident_ids), 500):
                batch = tuple(resident_ids[start : start + 500])
                rows += run(
                    "SELECT resident_id, wrapped_key, master_key_id, created_at, shredded_at "
                    f"FROM {self._residents} WHERE resident_id IN "
                    f"({', '.join('?' * len(batch))})",
                    batch,
                )
        return [_resident_row(row) for row in rows]

    def shred_resident_key(self, resident_id: str, at: datetime) -> None:
        with self._transaction() as run:
            if self._sqlite:
                # Overwrite freed pages with zeros rather than leaving the old bytes on disk.
                run("PRAGMA secure_delete = ON")
            run(
                f"INSERT INTO {self._residents} "
                "(resident_id, wrapped_key, master_key_id, created_at, shredded_at) "
                "VALUES (?, NULL, '', ?, ?) "
                "ON CONFLICT (resident_id) DO UPDATE SET wrapped_key = NULL, "
                "shredded_at = excluded.shredded_at",
                (resident_id, at.isoformat(), at.isoformat()),
            )
        self._purge_old_versions()

    def add_signing_key(self, record: SigningKeyRecord) -> None:
        with self._transaction() as run:
            run(
                f"INSERT INTO {self._signing} (kid, purpose, public_key, wrapped_private, "
                "master_key_id, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (
                    record.kid,
                    record.purpose,
                    record.public_key,
                    record.wrapped_private,
                    record.master_key_id,
                    record.created_at.isoformat(),
                ),
            )

    def signing_keys(self, purpose: str) -> list[SigningKeyRecord]:
        with self._db.read() as run:
            rows = run(
                "SELECT kid, purpose, public_key, wrapped_private, master_key_id, created_at, "
                f"retired_at FROM {self._signing} WHERE purpose = ? ORDER BY created_at, kid",
                (purpose,),
            )
        return [
            SigningKeyRecord(
                kid=r[0],
                purpose=r[1],
                public_key=bytes(r[2]),
                wrapped_private=bytes(r[3]),
                master_key_id=r[4],
                created_at=datetime.fromisoformat(r[5]),
                retired_at=datetime.fromisoformat(r[6]) if r[6] else None,
            )
            for r in rows
        ]

    def retire_signing_key(self, kid: str, at: datetime) -> None:
        with self._transaction() as run:
            run(
                f"UPDATE {self._signing} SET retired_at = ? WHERE kid = ? AND retired_at IS NULL",
                (at.isoformat(), kid),
            )

    def count_wrapped(self, *, except_under: str | None = None) -> int:
        other = "" if except_under is None else " AND master_key_id <> ?"
        params = () if except_under is None else (except_under,)
        with self._transaction(commit=False) as run:  # both counts from one snapshot
            residents = run(
                f"SELECT COUNT(*) FROM {self._residents} WHERE wrapped_key IS NOT NULL{other}",
                params,
            )
            signing = run(f"SELECT COUNT(*) FROM {self._signing} WHERE 1 = 1{other}", params)
        return int(residents[0][0]) + int(signing[0][0])

    def rewrap_all(
        self,
        rewrap: Rewrap,
        *,
        except_under: str,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        done = 0
        with self._transaction() as run:
            # Hold off every other key writer until the re-wrap commits, so no key
            # created meanwhile stays under the old master key unnoticed.
            if self._sqlite:
                run(f"UPDATE {self._signing} SET kid = kid WHERE 0 = 1")
            else:
                run(f"LOCK TABLE {self._residents}, {self._signing} IN SHARE ROW EXCLUSIVE MODE")
            residents = run(
                f"SELECT resident_id, wrapped_key, master_key_id FROM {self._residents} "
                "WHERE wrapped_key IS NOT NULL AND master_key_id <> ? ORDER BY resident_id",
                (except_under,),
            )
            signing = run(
                f"SELECT kid, wrapped_private, master_key_id FROM {self._signing} "
                "WHERE master_key_id <> ? ORDER BY kid",
                (except_under,),
            )
            plan: list[tuple[KeyKind, str, str, str, Any, str]] = [
                ("resident", self._residents, "resident_id", *r) for r in residents
            ]
            plan += [("signing", self._signing, "kid", *r) for r in signing]
            for kind, table, id_column, owner, wrapped, master_id in plan:
                new_wrapped, new_master = rewrap(kind, owner, bytes(wrapped), master_id)
                column = "wrapped_key" if kind == "resident" else "wrapped_private"
                run(
                    f"UPDATE {table} SET {column} = ?, master_key_id = ? WHERE {id_column} = ?",
                    (new_wrapped, new_master, owner),
                )
                done += 1
                if progress:
                    progress(done)
        self._purge_old_versions()
        return done

    def _transaction(self, *, commit: bool = True) -> AbstractContextManager[Run]:
        return self._db.transaction(commit=commit)

    def _purge_old_versions(self) -> None:
        """Best effort to drop superseded copies of key rows from the database files."""
        if self._sqlite:
            with self._datastore.get_connection(commit=True) as conn:
                conn.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            with self._datastore.get_connection() as conn:
                conn.execute(f"VACUUM {self._residents}")
                conn.execute(f"VACUUM {self._signing}")


def _resident_row(row: Any) -> WrappedResidentKey:
    return WrappedResidentKey(
        resident_id=row[0],
        wrapped=bytes(row[1]) if row[1] is not None else None,
        master_key_id=row[2],
        created_at=datetime.fromisoformat(row[3]),
        shredded_at=datetime.fromisoformat(row[4]) if row[4] else None,
    )
