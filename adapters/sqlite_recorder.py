"""SQLite event recorder: eventsourcing's, with originator ids read back on a short path.

The SQLite store keeps each originator id as 32 hex digits of text, and reading the log
turns every one back into a :class:`UUID`: a million times in a rebuild, a verification
or a re-adjudication of a million events. :func:`vault.transcoding.uuid_from_hex` does it
without the general parsing of :class:`UUID`'s constructor.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.sqlite import SQLiteApplicationRecorder

from projections.sql import LogTable
from vault.transcoding import uuid_from_hex


class SQLiteRecorder(SQLiteApplicationRecorder):
    """Reads originator ids with :func:`uuid_from_hex`, and describes its table to the
    read models; everything else is the library's."""

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        if self.datastore.originator_id_type == "uuid":
            return uuid_from_hex(originator_id)
        return originator_id

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
