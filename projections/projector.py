"""How each event changes the read models.

Personal fields are kept in the views sealed with the resident's key, as they are in
the events, so erasing a resident (destroying the key) makes the views unreadable for
them too, with no plaintext left behind in the view tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from keys.errors import KeyLayerError, TamperedSecret
from keys.secrets import open_personal_fields, seal_personal_fields
from projections.schema import stamp, stamp_iso, view_table
from projections.sql import Database, LogTable, Params, Run, Write
from vault.access import ACCESS_TOPIC, AccessAttempt
from vault.consent import USED_TOPIC, Consent
from vault.document import REUSED_TOPIC, Document
from vault.personal import Erased, personal_context, stored_sealed_personal
from vault.ports import DataKeys
from vault.resident import Resident
from vault.transcoding import stored_id_text, stored_time_text


class Projector:
    """Applies events to one generation of the views, inside the caller's transaction."""

    def __init__(self, db: Database, generation: int, log: LogTable) -> None:
        self.db = db
        self.log = log
        """The log's own table, which uses and reuses are counted from (:meth:`add_counts`)."""
        self.key_of: Callable[[str], bytes | None] = lambda resident_id: None
        """Each resident's data key (None when erased), to seal view rows with: set it
        before applying events that carry personal fields."""
        self.residents = view_table(db, "residents", generation)
        self.library = view_table(db, "library", generation)
        self.consents = view_table(db, "consents", generation)
        self.access = view_table(db, "access", generation)
        # By event class name (several are made by the @event decorator at run time).
        self._handlers: dict[str, Callable[[Any, int], None]] = {
            "Resident.Registered": self._resident_registered,
            "Resident.GradeRecorded": self._grade_recorded,
            "Resident.Erased": self._resident_erased,
            "Document.Submitted": self._document_filed,
            "Document.Issued": self._document_filed,
            "Document.Verified": self._document_verified,
            "Document.Superseded": self._document_superseded,
            "Document.Revoked": self._document_ended("revoked"),
            "Document.Withdrawn": self._document_ended("withdrawn"),
            "Consent.Granted": self._consent_granted,
            "Consent.Revoked": self._consent_revoked,
            _ACCESS_RECORDED: self._access_recorded,
        }
        # Events that change only a count, counted in the log by the database
        # (:meth:`add_counts`), never read: by topic, the table, column and key they count in.
        self._counted: dict[str, tuple[str, str, str]] = {
            REUSED_TOPIC: (self.library, "reuse_count", "document_id"),
            USED_TOPIC: (self.consents, "uses", "consent_id"),
        }
        # Events taken in from their stored state, undecoded (see :meth:`take_stored`).
        self._stored: dict[str, Callable[[UUID | str, dict[str, Any], int], None]] = {
            ACCESS_TOPIC: self._access_stored,
        }
        self.topics = tuple(map(_topic_of, self._handlers))
        """The topics of the events to read for :meth:`apply` or :meth:`take_stored`; uses
        and reuses are counted (:meth:`add_counts`), the rest change no view."""
        self._json_lists: dict[tuple[str, ...], str] = {}
        self._new_resident = _Insert(self.residents, ("resident_id", "aggregate_id"))
        self._new_document = _Insert(
            self.library,
            ("document_id", "resident_id", "position", "doc_type", "personal",
             "content_type", "size", "trust_level", "issuer", "status", "expires_at",
             "created_at", "replaces"),
        )
        self._new_consent = _Insert(
            self.consents,
            ("consent_id", "resident_id", "position", "department", "doc_types", "purpose",
             "valid_from", "valid_until", "max_uses", "granted_at"),
        )
        self._new_access = _Insert(
            self.access,
            ("access_id", "position", "resident_id", "officer", "department", "document_id",
             "doc_type", "purpose", "consent_id", "allowed", "reason_codes", "personal",
             "policy_version", "rule", "request_id", "at"),
        )
        self._inserts: dict[_Insert, list[Params]] = {}
        self._assignments: list[tuple[str, Params]] = []

    def apply(self, event: Any, position: int) -> None:
        """Take in one event; its changes are written by the next :meth:`flush`."""
        handler = self._handlers.get(type(event).__qualname__)
        if handler is not None:
            handler(event, position)

    def takes_stored(self, topic: str) -> bool:
        """Whether events of ``topic`` are taken in from their stored state
        (:meth:`take_stored`) rather than decoded for :meth:`apply`: access events, most
        of a busy log, whose rows are copies of their fields."""
        return topic in self._stored

    def take_stored(
        self, topic: str, originator_id: UUID | str, state: dict[str, Any], position: int
    ) -> None:
        """Take in one event of a topic :meth:`takes_stored` names, from its state as
        :meth:`~vault.personal.PersonalDataMapper.to_stored_states` reads it; its changes
        are the same as :meth:`apply` makes of the event."""
        self._stored[topic](originator_id, state, position)

    def owners_to_seal(self, events: Iterable[Any]) -> set[str]:
        """The residents whose keys :meth:`apply` needs for these events (see
        :attr:`key_of`): only the owners of rows the projector seals itself."""
        return {e.resident_id for e in events if type(e).__qualname__ in _SEALED_HERE}

    def flush(self, write: Write) -> None:
        """Write the changes of the events taken in since the last flush, in few statements.

        New rows first (a row's first event comes before any that change it), then the
        assignments in the order of their events (the last one to a column wins, as it
        did in the log).
        """
        for insert, rows in self._inserts.items():
            write.many(insert.statement, rows)
        for statement, rows in _runs(self._assignments):
            write.many(statement, rows)
        self._inserts.clear()
        self._assignments.clear()

    def add_counts(self, write: Write, first: int, last: int) -> None:
        """Add the uses and reuses among notifications ``first`` to ``last`` (both
        included) to their rows, counted by the database in the log itself: most of a
        busy log, and none of it read out. After :meth:`flush` (a document filed in the
        same batch must have its row), in the same transaction as the position the batch
        reaches, so each event counts once.

        PostgreSQL counts every counter's events in one pass over the stretch and updates
        each table from that (one statement, its updates in ``WITH`` clauses); SQLite,
        which has no updates there, takes one statement per counter."""
        log = self.log
        counting = (
            f"SELECT topic, {log.aggregate_id} AS k, COUNT(*) AS n FROM {log.name} "
            f"WHERE {log.position} BETWEEN ? AND ? AND topic IN "
            f"({', '.join('?' * len(self._counted))}) GROUP BY topic, {log.aggregate_id}"
        )
        updates = [
            (f"UPDATE {table} AS t SET {column} = t.{column} + c.n FROM counted AS c "
             f"WHERE c.topic = ? AND t.{key} = c.k", topic)
            for topic, (table, column, key) in self._counted.items()
        ]
        topics = tuple(self._counted)
        if self.db.sqlite:
            for update, topic in updates:
                write(f"WITH counted AS ({counting}) {update}", (first, last, *topics, topic))
            return
        *others, (final, final_topic) = updates
        clauses = [f"counted AS MATERIALIZED ({counting})"]
        clauses += [f"u{n} AS ({update})" for n, (update, _) in enumerate(others)]
        write(
            f"WITH {', '.join(clauses)} {final}",
            (first, last, *topics, *(topic for _, topic in others), final_topic),
        )

    def copy_inserts(self, run: Run) -> None:
        """Write the new rows taken in since the last flush with ``COPY`` (on PostgreSQL),
        ahead of :meth:`flush`, which then writes the rest. Only for a generation no
        other writer touches (a rebuild's): unlike :meth:`flush`, a row already there
        is an error, not skipped (in an access log loaded unkeyed, when it is keyed)."""
        for insert, rows in self._inserts.items():
            run.copy(insert.table, insert.columns, rows)
        self._inserts.clear()

    def _insert(self, insert: _Insert, params: Params) -> None:
        self._inserts.setdefault(insert, []).append(params)

    def _assign(self, statement: str, params: Params) -> None:
        self._assignments.append((statement, params))

    def seal(self, resident_id: str, fields: dict[str, Any], context: str) -> bytes | None:
        """Personal fields for a view row, sealed; None when they were erased or cannot be."""
        key = self.key_of(resident_id)
        if key is None or any(isinstance(v, Erased) for v in fields.values()):
            return None
        return seal_personal_fields(key, json.dumps(fields).encode(), context=context.encode())

    def _resident_registered(self, e: Any, position: int) -> None:
        self._insert(self._new_resident, (e.resident_id, str(e.originator_id)))

    def _grade_recorded(self, e: Any, position: int) -> None:
        personal = self.seal(e.resident_id, {"grade": e.grade}, f"view:resident:{e.resident_id}")
        self._assign(f"UPDATE {self.residents} SET personal = ? WHERE resident_id = ?",
            (personal, e.resident_id))

    def _resident_erased(self, e: Any, position: int) -> None:
        self._assign(
            f"UPDATE {self.residents} SET erased = 1, personal = NULL WHERE aggregate_id = ?",
            (str(e.originator_id),),
        )

    def _document_filed(self, e: Any, position: int) -> None:
        personal = self.seal(
            e.resident_id,
            {"title": e.title, "filename": e.filename, "sha256": e.content_sha256},
            f"view:document:{e.originator_id}",
        )
        self._insert(
            self._new_document,
            (
                str(e.originator_id), e.resident_id, position, e.doc_type, personal,
                e.content_type, e.size, e.trust_level, e.issuer, "active",
                stamp(e.expires_at), stamp(e.timestamp),
                str(e.replaces) if e.replaces else None,
            ),
        )

    def _document_verified(self, e: Any, position: int) -> None:
        self._assign(f"UPDATE {self.library} SET trust_level = 'B' WHERE document_id = ?",
            (str(e.originator_id),))

    def _document_superseded(self, e: Any, position: int) -> None:
        self._assign(
            f"UPDATE {self.library} SET status = 'superseded', superseded_by = ? "
            "WHERE document_id = ?",
            (str(e.by), str(e.originator_id)),
        )

    def _document_ended(self, status: str) -> Callable[[Any, int], None]:
        def ended(e: Any, position: int) -> None:
            self._assign(f"UPDATE {self.library} SET status = ? WHERE document_id = ?",
                (status, str(e.originator_id)))

        return ended

    def _consent_granted(self, e: Any, position: int) -> None:
        self._insert(
            self._new_consent,
            (
                str(e.originator_id), e.resident_id, position, e.department,
                json.dumps(list(e.doc_types)), e.purpose, stamp(e.valid_from),
                stamp(e.valid_until), e.max_uses, stamp(e.granted_at),
            ),
        )

    def _consent_revoked(self, e: Any, position: int) -> None:
        self._assign(f"UPDATE {self.consents} SET revoked_at = ? WHERE consent_id = ?",
            (stamp(e.at), str(e.originator_id)))

    def _access_recorded(self, e: Any, position: int) -> None:
        # Decoded only when its stored state cannot be copied (see ``take_stored``):
        # its reasons are sealed here, under the row's own context.
        personal = self.seal(
            e.resident_id, {"reasons": e.reasons}, access_context(e.originator_id)
        )
        self._access_row(
            vars(e), str(e.originator_id), position, str(e.document_id),
            str(e.consent_id) if e.consent_id else None, personal, stamp(e.at),
        )

    def _access_stored(self, access_id: UUID | str, state: dict[str, Any], position: int) -> None:
        # The stored fields copied as they are, the sealed ones too: nothing opened,
        # nothing sealed.
        self._access_row(
            state, str(access_id), position, stored_id_text(state["document_id"]),
            stored_id_text(state["consent_id"]), stored_sealed_personal(state),
            stamp_iso(stored_time_text(state["at"])),
        )

    def _access_row(
        self,
        fields: dict[str, Any],
        access_id: str,
        position: int,
        document_id: str | None,
        consent_id: str | None,
        personal: bytes | None,
        at: str | None,
    ) -> None:
        """An access row: the fields that read the same in an event and in its stored
        state from ``fields``, the others given as they go in the row."""
        f = fields
        self._insert(
            self._new_access,
            (
                access_id, position, f["resident_id"], f["officer"], f["department"],
                document_id, f["doc_type"], f["purpose"], consent_id,
                1 if f["allowed"] else 0, self._json_list(f["reason_codes"]), personal,
                f["policy_version"], f["rule"], f["request_id"], at,
            ),
        )

    def _json_list(self, items: list[str]) -> str:
        """``json.dumps`` of a list of strings, remembered: a log repeats a few lists of
        reason codes, and the text must not change (the figures group by it)."""
        key = tuple(items)
        text = self._json_lists.get(key)
        if text is None:
            text = self._json_lists[key] = json.dumps(list(key))
        return text


_AGGREGATES = {"Resident": Resident, "Document": Document, "Consent": Consent,
               "AccessAttempt": AccessAttempt}


def _topic_of(event_name: str) -> str:
    """The topic of an event named as the handlers name it (``"Resident.Registered"``)."""
    aggregate, event = event_name.split(".")
    return get_topic(getattr(_AGGREGATES[aggregate], event))


@dataclass(frozen=True, eq=False)
class _Insert:
    """New rows for a view table: the first column is its key; a row whose key is
    already there is left as it is. Compared (and hashed, once per row taken in) by
    identity: each projector has one of each."""

    table: str
    columns: tuple[str, ...]

    @property
    def statement(self) -> str:
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) "
            f"VALUES ({', '.join('?' * len(self.columns))}) "
            f"ON CONFLICT ({self.columns[0]}) DO NOTHING"
        )


def _runs(statements: list[tuple[str, Params]]) -> Iterator[tuple[str, list[Params]]]:
    """Consecutive uses of the same statement, grouped, in order."""
    for statement, group in groupby(statements, key=itemgetter(0)):
        yield statement, [params for _, params in group]


_ACCESS_RECORDED = "AccessAttempt.Recorded"
_SEALED_HERE = frozenset(
    {"Resident.GradeRecorded", "Document.Submitted", "Document.Issued", _ACCESS_RECORDED}
)
"""Events whose personal fields the projector seals into their view row itself, when it
is given them decoded."""


def access_context(access_id: object) -> str:
    """What an access row's personal fields are sealed under when the projector seals them
    itself (for an event that was decoded opened)."""
    return f"view:access:{access_id}"


def open_access_personal(
    keys: DataKeys, resident_id: str, access_id: str, sealed: bytes | None
) -> dict[str, Any] | None:
    """An access row's personal fields (``reasons``, and ``grade`` when the row holds the
    event's own sealed fields), or None once the resident is erased."""
    if sealed is None:
        return None
    event_context = personal_context(ACCESS_TOPIC, UUID(access_id), 1).decode()
    try:
        return open_sealed(keys, resident_id, sealed, event_context)
    except TamperedSecret:  # sealed by the projector itself, under its own context
        return open_sealed(keys, resident_id, sealed, access_context(access_id))


def open_sealed(
    keys: DataKeys, resident_id: str, sealed: bytes | None, context: str
) -> dict[str, Any] | None:
    """A view row's personal fields, or None once its resident is erased."""
    if sealed is None:
        return None
    try:
        key = keys.data_key(resident_id)
    except KeyLayerError:
        return None
    opened: dict[str, Any] = json.loads(
        open_personal_fields(key, bytes(sealed), context=context.encode())
    )
    return opened
