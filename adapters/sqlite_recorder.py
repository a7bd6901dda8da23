"""SQLite event recorder: eventsourcing's, with originator ids read back on a short path.

The SQLite store keeps each originator id as 32 hex digits of text, and reading the log
turns every one back into a :class:`UUID`: a million times in a rebuild, a verification
or a re-adjudication of a million events. :func:`vault.transcoding.uuid_from_hex` does it
without the general parsing of :class:`UUID`'s constructor.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.sqlite import SQLiteApplicationRecorder

from vault.transcoding import uuid_from_hex


class SQLiteRecorder(SQLiteApplicationRecorder):
    """Reads originator ids with :func:`uuid_from_hex`, and counts events by aggregate;
    everything else is the library's."""

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        if self.datastore.originator_id_type == "uuid":
            return uuid_from_hex(originator_id)
        return originator_id

    def count_events(
        self, start: int, stop: int, topics: Sequence[str]
    ) -> list[tuple[UUID | str, str, int]]:
        """How many events of each of ``topics`` each aggregate has among notifications
        ``start`` to ``stop`` (both included): the read models only count uses and
        reuses, most of a busy log."""
        marks = ", ".join("?" * len(topics))
        statement = (
            f"SELECT originator_id, topic, COUNT(*) FROM {self.events_table_name} "
            f"WHERE rowid BETWEEN ? AND ? AND topic IN ({marks}) "
            "GROUP BY originator_id, topic"
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, [start, stop, *topics])
            return [
                (self.convert_originator_id(originator_id), topic, int(n))
                for originator_id, topic, n in c.fetchall()
            ]
