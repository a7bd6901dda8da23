"""SQLite event recorder: eventsourcing's, with originator ids read back on a short path.

The SQLite store keeps each originator id as 32 hex digits of text, and reading the log
turns every one back into a :class:`UUID`: a million times in a rebuild, a verification
or a re-adjudication of a million events. :func:`adapters.transcoding.uuid_from_hex` does it
without the general parsing of :class:`UUID`'s constructor.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from adapters.sql import from_snapshot_statement, quoted, split_snapshot
from adapters.transcoding import uuid_from_hex
from projections.database import LogTable


class SQLiteRecorder(SQLiteApplicationRecorder):
    """Reads originator ids with :func:`uuid_from_hex`, and describes its table to the
    read models; everything else is the library's."""

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        if self.datastore.originator_id_type == "uuid":
            return uuid_from_hex(originator_id)
        return originator_id

    def select_notifications_at(self, positions: Collection[int]) -> Sequence[Notification]:
        """The notifications at these positions (those there are), in log order, in one
        query."""
        if not positions:
            return []
        marks = ",".join("?" * len(positions))
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, * FROM {self.events_table_name} WHERE rowid IN ({marks}) "
                "ORDER BY rowid",
                list(positions),
            )
            return [
                Notification(
                    id=row["rowid"],
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]

    def select_from_snapshot(
        self, originator_id: UUID, snapshots_table: str
    ) -> tuple[StoredEvent | None, list[StoredEvent]]:
        """The aggregate's newest snapshot in ``snapshots_table`` (None if it has none) and
        its events after it, in one query."""
        key = originator_id.hex if self.datastore.originator_id_type == "uuid" else originator_id
        statement = from_snapshot_statement(
            quoted(self.events_table_name), quoted(snapshots_table), "?"
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, (key, key, key))
            convert = self.convert_originator_id
            return split_snapshot(
                [(row[0], convert(row[1]), row[2], row[3], row[4]) for row in c.fetchall()]
            )

    def select_changes(self, after: int, limit: int) -> Sequence[tuple[int, UUID | str, int]]:
        """Position, originator id and version of at most ``limit`` events recorded after
        position ``after``, in log order: what changed, without the events' states."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, originator_id, originator_version FROM {self.events_table_name} "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (after, limit),
            )
            convert = self.convert_originator_id
            return [(row[0], convert(row[1]), row[2]) for row in c.fetchall()]

    def log_table(self) -> LogTable:
        """The events table, for the read models' statements (they count uses and reuses
        in it, inside their own transactions)."""
        aggregate_id = "originator_id"
        if self.datastore.originator_id_type == "uuid":  # kept as 32 hex digits
            aggregate_id = "||'-'||".join(
                f"substr(originator_id, {start}, {length})"
                for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
            )
        return LogTable(self.events_table_name, "rowid", aggregate_id)
