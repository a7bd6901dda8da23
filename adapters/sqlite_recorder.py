"""SQLite event recorder: eventsourcing's, with originator ids read back on a short path.

The SQLite store keeps each originator id as 32 hex digits of text, and reading the log
turns every one back into a :class:`UUID`: a million times in a rebuild, a verification
or a re-adjudication of a million events. :func:`vault.transcoding.uuid_from_hex` does it
without the general parsing of :class:`UUID`'s constructor.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.sqlite import SQLiteApplicationRecorder

from vault.transcoding import uuid_from_hex


class SQLiteRecorder(SQLiteApplicationRecorder):
    """Reads originator ids with :func:`uuid_from_hex`; everything else is the library's."""

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        if self.datastore.originator_id_type == "uuid":
            return uuid_from_hex(originator_id)
        return originator_id
