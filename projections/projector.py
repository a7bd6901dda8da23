"""How each event changes the read models.

Personal fields are kept in the views sealed with the resident's key, as they are in
the events, so erasing a resident (destroying the key) makes the views unreadable for
them too, with no plaintext left behind in the view tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from keys.errors import KeyLayerError, TamperedSecret
from keys.secrets import open_personal_fields, personal_context, seal_personal_fields
from projections.database import Database, LogTable, Params, Run, Write
from projections.schema import stamp, stamp_iso
from projections.tables import (
    ACCESS,
    APPLICATIONS,
    CONSENTS,
    LIBRARY,
    RESIDENTS,
    SERVICE_DAYS,
    WORK_QUEUE,
    Table,
)
from vault.access import ACCESS_TOPIC, AccessAttempt
from vault.application import Application
from vault.attestation import AttestationAttempt
from vault.consent import USE_RETURNED_TOPIC, USED_TOPIC, Consent
from vault.document import REUSE_RETURNED_TOPIC, REUSED_TOPIC, Document
from vault.markers import Erased
from vault.ports import DataKeys
from vault.resident import Resident
from vault.workdays import CHINA


class Projector:
    """Applies events to one generation of the views, inside the caller's transaction."""

    def __init__(self, db: Database, generation: int, log: LogTable) -> None:
        self.db = db
        self.log = log
        """The log's own table, which uses and reuses are counted from (:meth:`add_counts`)."""
        self.key_of: Callable[[str], bytes | None] = lambda resident_id: None
        """Each resident's data key (None when erased), to seal view rows with: set it
        before applying events that carry personal fields."""
        self.residents = RESIDENTS.name(db, generation)
        self.library = LIBRARY.name(db, generation)
        self.consents = CONSENTS.name(db, generation)
        self.access = ACCESS.name(db, generation)
        self.applications = APPLICATIONS.name(db, generation)
        self.work_queue = WORK_QUEUE.name(db, generation)
        self.service_days = SERVICE_DAYS.name(db, generation)
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
            _ATTESTATION_RECORDED: self._attestation_recorded,
            "AccessAttempt.Undelivered": self._access_undelivered,
            "Application.Accepted": self._application_accepted,
            "Application.Decided": self._application_decided,
            "Application.Supplied": self._application_supplied,
            "Application.MissingSupplied": self._application_missing_supplied,
            "Application.Withdrawn": self._application_withdrawn,
            "Application.Rated": self._application_rated,
        }
        # Events that change only a count, counted in the log by the database
        # (:meth:`add_counts`), never read: by topic, the table, column and key they count in.
        self._counted: dict[tuple[str, str, str], dict[str, int]] = {
            (self.library, "reuse_count", "document_id"): {
                REUSED_TOPIC: 1, REUSE_RETURNED_TOPIC: -1,
            },
            (self.consents, "uses", "consent_id"): {USED_TOPIC: 1, USE_RETURNED_TOPIC: -1},
        }
        """Events that only change a count, never read: by the table, column and key they
        count in, each topic with what it adds (a use given back takes one away)."""
        # Events taken in from their stored state, undecoded (see :meth:`take_stored`).
        self._stored: dict[str, Callable[[UUID | str, dict[str, Any], int], None]] = {
            ACCESS_TOPIC: self._access_stored,
        }
        self.stored_fields = {"ids": ("document_id", "consent_id"), "times": ("at",)}
        """How :meth:`take_stored` wants the stored states read
        (:meth:`vault.ports.EventLog.stored_states`): which fields as id and time text."""
        self.topics = tuple(map(_topic_of, self._handlers))
        """The topics of the events to read for :meth:`apply` or :meth:`take_stored`; uses
        and reuses are counted (:meth:`add_counts`), the rest change no view."""
        self._json_lists: dict[tuple[str, ...], str] = {}
        self._new_resident = _Insert(self.residents, RESIDENTS)
        self._new_document = _Insert(self.library, LIBRARY)
        self._new_consent = _Insert(self.consents, CONSENTS)
        self._new_access = _Insert(self.access, ACCESS)
        self._new_application = _Insert(self.applications, APPLICATIONS)
        self._new_in_queue = _Insert(self.work_queue, WORK_QUEUE)
        self._add_day = SERVICE_DAYS.add(self.service_days)
        self._add_day_of = SERVICE_DAYS.add(
            self.service_days, select_from=f"{self.applications} WHERE application_id = ?"
        )
        self._queue_again = (
            f"DELETE FROM {self.work_queue} WHERE application_id = ?",
            WORK_QUEUE.insert(self.work_queue),
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
        :meth:`~vault.ports.EventLog.stored_states` reads it (with :attr:`stored_fields`);
        its changes are the same as :meth:`apply` makes of the event."""
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
        topics = tuple(t for signs in self._counted.values() for t in signs)
        counting = (
            f"SELECT topic, {log.aggregate_id} AS k, COUNT(*) AS n FROM {log.name} "
            f"WHERE {log.position} BETWEEN ? AND ? AND topic IN "
            f"({', '.join('?' * len(topics))}) GROUP BY topic, {log.aggregate_id}"
        )
        # One update per counter, of the net count of its topics for each row: two
        # updates of one row in one statement would not both take effect on PostgreSQL.
        updates: list[tuple[str, tuple[Any, ...]]] = []
        for (table, column, key), signs in self._counted.items():
            cases = " ".join(f"WHEN ? THEN {int(sign)}" for sign in signs.values())
            net = (
                f"SELECT k, SUM(n * CASE topic {cases} END) AS n FROM counted "
                f"WHERE topic IN ({', '.join('?' * len(signs))}) GROUP BY k"
            )
            params = (*signs, *signs)
            updates.append(
                (f"UPDATE {table} AS t SET {column} = t.{column} + d.n FROM ({net}) AS d "
                 f"WHERE t.{key} = d.k", params)
            )
        if self.db.sqlite:
            for update, params in updates:
                write(f"WITH counted AS ({counting}) {update}", (first, last, *topics, *params))
            return
        *others, (final, final_params) = updates
        clauses = [f"counted AS MATERIALIZED ({counting})"]
        clauses += [f"u{n} AS ({update})" for n, (update, _) in enumerate(others)]
        write(
            f"WITH {', '.join(clauses)} {final}",
            (first, last, *topics, *(p for _, params in others for p in params), *final_params),
        )

    def copy_inserts(self, run: Run) -> None:
        """Write the new rows taken in since the last flush with ``COPY`` (on PostgreSQL),
        ahead of :meth:`flush`, which then writes the rest. Only for a generation no
        other writer touches (a rebuild's): unlike :meth:`flush`, a row already there
        is an error, not skipped (in an access log loaded unkeyed, when it is keyed)."""
        for insert, rows in self._inserts.items():
            run.copy(insert.table, insert.description.names, rows)
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
        self._insert(
            self._new_resident,
            RESIDENTS.row(resident_id=e.resident_id, aggregate_id=str(e.originator_id)),
        )

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
            LIBRARY.row(
                document_id=str(e.originator_id), resident_id=e.resident_id,
                position=position, doc_type=e.doc_type, personal=personal,
                content_type=e.content_type, size=e.size, trust_level=e.trust_level,
                issuer=e.issuer, status="active", expires_at=stamp(e.expires_at),
                created_at=stamp(e.timestamp), replaces=str(e.replaces) if e.replaces else None,
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
            CONSENTS.row(
                consent_id=str(e.originator_id), resident_id=e.resident_id, position=position,
                department=e.department, doc_types=json.dumps(list(e.doc_types)),
                purpose=e.purpose, valid_from=stamp(e.valid_from),
                valid_until=stamp(e.valid_until), max_uses=e.max_uses,
                granted_at=stamp(e.granted_at),
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

    def _attestation_recorded(self, e: Any, position: int) -> None:
        # An issue or a verification: a row of the access log, its act in place of a
        # purpose; its reasons sealed here, under the row's own context.
        personal = self.seal(
            e.resident_id, {"reasons": e.reasons}, access_context(e.originator_id)
        )
        self._insert(
            self._new_access,
            ACCESS.row(
                access_id=str(e.originator_id), position=position, resident_id=e.resident_id,
                officer=e.officer, department=e.department, document_id=str(e.document_id),
                doc_type=e.doc_type, purpose=e.act, consent_id=None,
                allowed=1 if e.allowed else 0,
                reason_codes=self._json_list(e.reason_codes), personal=personal,
                policy_version=e.policy_version, rule=e.rule, request_id=e.request_id,
                at=stamp(e.at), action=e.act,
            ),
        )

    def _access_undelivered(self, e: Any, position: int) -> None:
        self._assign(f"UPDATE {self.access} SET undelivered = ? WHERE access_id = ?",
            (e.reason, str(e.originator_id)))

    def _access_stored(self, access_id: UUID | str, state: dict[str, Any], position: int) -> None:
        # The stored fields copied as they are, the sealed ones too: nothing opened,
        # nothing sealed.
        self._access_row(
            state, str(access_id), position, state["document_id"], state["consent_id"],
            state["personal"], stamp_iso(state["at"]),
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
            ACCESS.row(
                access_id=access_id, position=position, resident_id=f["resident_id"],
                officer=f["officer"], department=f["department"], document_id=document_id,
                doc_type=f["doc_type"], purpose=f["purpose"], consent_id=consent_id,
                allowed=1 if f["allowed"] else 0,
                reason_codes=self._json_list(f["reason_codes"]), personal=personal,
                policy_version=f["policy_version"], rule=f["rule"],
                request_id=f["request_id"], at=at,
            ),
        )

    def _application_accepted(self, e: Any, position: int) -> None:
        application_id = str(e.originator_id)
        sources = [m["source"] for m in e.materials]
        reused, brought = sources.count("library"), sources.count("window")
        self._insert(
            self._new_application,
            APPLICATIONS.row(
                application_id=application_id, resident_id=e.resident_id, position=position,
                service_id=e.service_id, department=e.department, unit=e.unit or "",
                channel=e.channel, status="accepted", accepted_at=stamp(e.accepted_at),
                due_at=stamp(e.due_at), materials_reused=reused, materials_brought=brought,
            ),
        )
        for department in e.steps[0]:
            self._insert(
                self._new_in_queue,
                WORK_QUEUE.row(department=department, application_id=application_id,
                               due=due_order(e.due_at), position=position),
            )
        self._assign(
            self._add_day,
            SERVICE_DAYS.row(
                day=china_day(e.accepted_at), unit=e.unit or "", department=e.department,
                service_id=e.service_id, accepted=1, materials_reused=reused,
                materials_brought=brought, trips_saved=1 if e.channel == "online" else 0,
            ),
        )

    def _application_decided(self, e: Any, position: int) -> None:
        application_id = str(e.originator_id)
        closes = e.working_days is not None
        status = {"approve": "approved" if closes else "in-review", "return": "returned",
                  "reject": "rejected"}[e.decision]
        self._assign(
            f"UPDATE {self.applications} SET status = ?, due_at = ?, decided_at = ?, "
            "on_time = ?, working_days = ? WHERE application_id = ?",
            (status, stamp(e.due_at), stamp(e.at) if closes else None,
             None if e.on_time is None else int(e.on_time), e.working_days, application_id),
        )
        self._requeue(application_id, e.waiting_on, e.due_at, position)
        if closes:
            self._add_to_day_of(application_id, e.at, decided=1, on_time=int(e.on_time),
                                working_days=e.working_days)

    def _application_supplied(self, e: Any, position: int) -> None:
        application_id = str(e.originator_id)
        self._assign(
            f"UPDATE {self.applications} SET status = ?, due_at = ?, "
            "materials_brought = materials_brought + 1 WHERE application_id = ?",
            ("returned" if e.due_at is None else "in-review", stamp(e.due_at), application_id),
        )
        self._requeue(application_id, e.waiting_on, e.due_at, position)
        self._add_to_day_of(application_id, e.at, materials_brought=1)

    def _application_missing_supplied(self, e: Any, position: int) -> None:
        """A material accepted as missing (容缺) has come: brought, and nothing else moves."""
        application_id = str(e.originator_id)
        self._assign(
            f"UPDATE {self.applications} SET materials_brought = materials_brought + 1 "
            "WHERE application_id = ?", (application_id,),
        )
        self._add_to_day_of(application_id, e.at, materials_brought=1)

    def _application_withdrawn(self, e: Any, position: int) -> None:
        application_id = str(e.originator_id)
        self._assign(
            f"UPDATE {self.applications} SET status = 'withdrawn', due_at = NULL "
            "WHERE application_id = ?", (application_id,),
        )
        self._requeue(application_id, [], None, position)

    def _application_rated(self, e: Any, position: int) -> None:
        application_id = str(e.originator_id)
        self._assign(f"UPDATE {self.applications} SET rating = ? WHERE application_id = ?",
                     (e.score, application_id))
        self._add_to_day_of(application_id, e.at, rated=1, rating_sum=e.score)

    def _requeue(
        self, application_id: str, departments: list[str], due_at: Any, position: int
    ) -> None:
        """The application waits on ``departments`` now, and on no other."""
        remove, add = self._queue_again
        self._assign(remove, (application_id,))
        for department in departments:
            self._assign(add, WORK_QUEUE.row(department=department, application_id=application_id,
                                             due=due_order(due_at), position=position))

    def _add_to_day_of(self, application_id: str, at: Any, **counts: int) -> None:
        """Add ``counts`` to the day of ``at`` of the application's unit, department and
        service (read from its row, there since its acceptance)."""
        row = SERVICE_DAYS.row(day=china_day(at), unit="", department="", service_id="",
                               **counts)
        taken = [v for n, v in zip(SERVICE_DAYS.names, row, strict=True)
                 if n not in SERVICE_DAYS.key[1:]]
        self._assign(self._add_day_of, (*taken, application_id))

    def _json_list(self, items: list[str]) -> str:
        """``json.dumps`` of a list of strings, remembered: a log repeats a few lists of
        reason codes, and the text must not change (the figures group by it)."""
        key = tuple(items)
        text = self._json_lists.get(key)
        if text is None:
            text = self._json_lists[key] = json.dumps(list(key))
        return text


_AGGREGATES = {"Resident": Resident, "Document": Document, "Consent": Consent,
               "AccessAttempt": AccessAttempt, "AttestationAttempt": AttestationAttempt,
               "Application": Application}
PAUSED = 2**62
"""The due order of an application whose clock stands still: after every due moment."""


def due_order(due_at: datetime | None) -> int:
    """A due moment as the queue orders it: microseconds since 1970 (UTC), or
    :data:`PAUSED`."""
    if due_at is None:
        return PAUSED
    return (due_at - _EPOCH) // timedelta(microseconds=1)


def china_day(moment: datetime) -> str:
    """The day of a moment in China Standard Time, as supervision counts days."""
    return moment.astimezone(CHINA).date().isoformat()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _topic_of(event_name: str) -> str:
    """The topic of an event named as the handlers name it (``"Resident.Registered"``)."""
    aggregate, event = event_name.split(".")
    return get_topic(getattr(_AGGREGATES[aggregate], event))


@dataclass(frozen=True, eq=False)
class _Insert:
    """New rows for a view table, whole rows (:attr:`Table.row`); a row whose key is
    already there is left as it is. Compared (and hashed, once per row taken in) by
    identity: each projector has one of each."""

    table: str
    description: Table

    @property
    def statement(self) -> str:
        return self.description.insert(self.table)


def _runs(statements: list[tuple[str, Params]]) -> Iterator[tuple[str, list[Params]]]:
    """Consecutive uses of the same statement, grouped, in order."""
    for statement, group in groupby(statements, key=itemgetter(0)):
        yield statement, [params for _, params in group]


_ACCESS_RECORDED = "AccessAttempt.Recorded"
_ATTESTATION_RECORDED = "AttestationAttempt.Recorded"
_SEALED_HERE = frozenset(
    {"Resident.GradeRecorded", "Document.Submitted", "Document.Issued", _ACCESS_RECORDED,
     _ATTESTATION_RECORDED}
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
