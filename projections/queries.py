"""Reading the read models: pages by log position (keyset), so writes going on never make
a page skip or repeat an item."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any

from policy.scales import Grade, TrustLevel
from projections.database import Database, Params
from projections.projector import PAUSED, due_order, open_access_personal, open_sealed
from projections.schema import active_generation, stamp, unstamp
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
from vault.consent import ConsentStatus, consent_status, covers
from vault.document import DocumentStatus, has_expired
from vault.judgement import Decides, fetchable
from vault.ports import DataKeys
from vault.supervision import Tally, Where


@dataclass(frozen=True)
class LibraryEntry:
    document_id: str
    resident_id: str
    position: int
    doc_type: str
    title: str | None
    filename: str | None
    sha256: str | None
    content_type: str
    size: int
    trust_level: TrustLevel
    issuer: str | None
    status: DocumentStatus
    expires_at: datetime | None
    created_at: datetime
    replaces: str | None
    superseded_by: str | None
    reuse_count: int

    @property
    def is_active(self) -> bool:
        return self.status is DocumentStatus.ACTIVE

    def is_expired(self, now: datetime) -> bool:
        return has_expired(self.expires_at, now)


@dataclass(frozen=True)
class ConsentEntry:
    consent_id: str
    resident_id: str
    position: int
    department: str
    doc_types: tuple[str, ...]
    purpose: str
    valid_from: datetime
    valid_until: datetime
    max_uses: int | None
    uses: int
    revoked_at: datetime | None
    granted_at: datetime

    def status(self, now: datetime) -> ConsentStatus:
        """The live status at ``now`` (:func:`vault.consent.consent_status`)."""
        return consent_status(
            revoked_at=self.revoked_at, max_uses=self.max_uses, uses=self.uses,
            valid_from=self.valid_from, valid_until=self.valid_until, now=now,
        )

    def covers(self, department: str, doc_type: str, purpose: str) -> bool:
        """Whether the consent's terms name this department, document type and purpose."""
        return covers(self, department, doc_type, purpose)


@dataclass(frozen=True)
class AccessEntry:
    access_id: str
    position: int
    resident_id: str
    officer: str
    department: str
    document_id: str
    doc_type: str | None
    purpose: str | None
    """The service a fetch was for; None for an issue or a verification."""
    consent_id: str | None
    allowed: bool
    reason_codes: tuple[str, ...]
    reasons: tuple[str, ...] | None
    policy_version: str
    rule: str | None
    request_id: str
    at: datetime
    action: str = "fetch"
    """``fetch``, or ``issue`` / ``verify`` for an attestation."""
    undelivered: str | None = None
    """Why an allowed fetch's bytes never went out (it was charged nothing), if they did not."""


@dataclass(frozen=True)
class AccessCount:
    """How many access attempts were made in an hour by a department with one outcome."""

    hour: datetime
    department: str
    allowed: bool
    reason: str | None
    """The first reason of a denial; None for an allowed attempt."""
    count: int


@dataclass(frozen=True)
class ResidentEntry:
    resident_id: str
    grade: Grade | None
    erased: bool


@dataclass(frozen=True)
class ApplicationEntry:
    """An application as the read models hold it: what lists, queues and supervision show."""

    application_id: str
    resident_id: str
    position: int
    service_id: str
    department: str
    unit: str | None
    """The window's unit; None online."""
    channel: str
    status: str
    accepted_at: datetime
    due_at: datetime | None
    decided_at: datetime | None
    on_time: bool | None
    working_days: int | None
    materials_reused: int
    materials_brought: int
    rating: int | None


@dataclass(frozen=True)
class QueuedEntry:
    """An application in a department's queue, with its place (for the next page)."""

    application: ApplicationEntry
    due: int
    """Its due moment as the queue orders it (:func:`projections.projector.due_order`)."""
    position: int

    @property
    def paused(self) -> bool:
        return self.due == PAUSED


JOINED = "<joined>"
"""Stands, in a query's text, for the table of the view it joins (see ``Views._select``)."""

_LIBRARY_PAGE = 200

LIVE_CONSENT = (
    "revoked_at IS NULL AND (max_uses IS NULL OR uses < max_uses) "
    "AND valid_from <= ? AND valid_until > ?"
)
"""A consent row is active at a time (given twice, stamped): the SQL that mirrors
:func:`vault.consent.consent_status`, held to it by a property test."""


class Views:
    """Queries over the generation of the views that is serving now."""

    def __init__(self, db: Database, keys: DataKeys) -> None:
        self.db = db
        self.keys = keys

    def resident(self, resident_id: str) -> ResidentEntry | None:
        rows = self._query(RESIDENTS, "WHERE resident_id = ?", (resident_id,))
        if not rows:
            return None
        row = rows[0]
        opened = open_sealed(self.keys, resident_id, row.personal, f"view:resident:{resident_id}")
        grade = Grade(opened["grade"]) if opened else None
        return ResidentEntry(resident_id, grade, bool(row.erased))

    def library(
        self,
        resident_id: str,
        *,
        limit: int,
        before: int | None = None,
        everything: bool = False,
        doc_types: Set[str] | None = None,
        unexpired_at: datetime | None = None,
    ) -> list[LibraryEntry]:
        """The resident's current documents, newest first (``everything``: ended ones too;
        only of ``doc_types``, and only those not expired at ``unexpired_at``, if given)."""
        where = "WHERE resident_id = ?" + ("" if everything else " AND status = 'active'")
        params: list[Any] = [resident_id]
        if before is not None:
            where += " AND position < ?"
            params.append(before)
        if doc_types is not None:
            where += f" AND doc_type IN ({_marks(doc_types)})"
            params += sorted(doc_types)
        if unexpired_at is not None:
            where += " AND (expires_at IS NULL OR expires_at > ?)"
            params.append(stamp(unexpired_at))
        rows = self._query(LIBRARY, f"{where} ORDER BY position DESC LIMIT ?", (*params, limit))
        return [self._library_entry(row) for row in rows]

    def current_documents(
        self, resident_id: str, doc_types: Set[str], *, per_type: int
    ) -> dict[str, list[str]]:
        """The ids of the resident's active documents of each of ``doc_types``, newest
        first, at most ``per_type`` of each: one query, nothing opened."""
        if not doc_types:
            return {}
        rows = self._select(
            LIBRARY, "document_id, doc_type",
            "WHERE document_id IN (SELECT document_id FROM (SELECT document_id, ROW_NUMBER() "
            f"OVER (PARTITION BY doc_type ORDER BY position DESC) AS n FROM {JOINED} "
            f"WHERE resident_id = ? AND status = 'active' AND doc_type IN ({_marks(doc_types)})"
            ") AS ranked WHERE n <= ?) ORDER BY position DESC",
            (resident_id, *sorted(doc_types), per_type), joined=LIBRARY,
        )
        found: dict[str, list[str]] = {doc_type: [] for doc_type in doc_types}
        for document_id, doc_type in rows:
            found[doc_type].append(document_id)
        return found

    def fetchable(
        self,
        resident_id: str,
        *,
        officer: str,
        department: str,
        purpose: str,
        decision_point: Callable[[], Decides],
        now: datetime,
        limit: int,
        before: int | None = None,
    ) -> list[LibraryEntry]:
        """The resident's documents the department may fetch now for the purpose, newest
        first from ``before`` (:func:`vault.judgement.fetchable` on the rows, with the
        decision point in force, asked for once the resident is known). For a resident
        unknown or erased, none: to an officer they look like one who consented to
        nothing."""
        resident = self.resident(resident_id)
        if resident is None or resident.erased:
            return []
        held = self.consents_held(department, now, resident_id=resident_id)
        if not held:
            return []
        # Only the rows that can pass are read: current, unexpired, of a type a consent
        # held covers for the purpose (the rule itself is applied to each row again).
        covered = {t for c in held if c.purpose == purpose for t in c.doc_types}
        rows = self._library_from(resident_id, before, covered, now)
        allowed = fetchable(
            rows, consents=held, grade=resident.grade, officer=officer, department=department,
            purpose=purpose, point=decision_point(), now=now,
        )
        return list(islice(allowed, limit))

    def _library_from(
        self, resident_id: str, before: int | None, doc_types: set[str], now: datetime
    ) -> Iterator[LibraryEntry]:
        """The resident's current documents of ``doc_types`` not expired ``now``, newest
        first from ``before``, read a page at a time for as long as the caller takes them."""
        while True:
            page = self.library(
                resident_id, limit=_LIBRARY_PAGE, before=before, doc_types=doc_types,
                unexpired_at=now,
            )
            yield from page
            if len(page) < _LIBRARY_PAGE:
                return
            before = page[-1].position

    def consents(
        self, resident_id: str, *, limit: int, before: int | None = None
    ) -> list[ConsentEntry]:
        where, params = "WHERE resident_id = ?", list[Any]([resident_id])
        if before is not None:
            where += " AND position < ?"
            params.append(before)
        rows = self._query(CONSENTS, f"{where} ORDER BY position DESC LIMIT ?", (*params, limit))
        return [_consent_entry(row) for row in rows]

    def consents_held(
        self,
        department: str,
        now: datetime,
        *,
        resident_id: str | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[ConsentEntry]:
        """The consents a department holds that are active now (as
        :meth:`ConsentEntry.status` says), in the order given; chosen and counted by the
        database, so a page reads only its own rows however many consents there are."""
        at = stamp(now)
        where = f"WHERE department = ? AND {LIVE_CONSENT}"
        params: list[Any] = [department, at, at]
        if resident_id is not None:
            where += " AND resident_id = ?"
            params.append(resident_id)
        if after is not None:
            where += " AND position > ?"
            params.append(after)
        rest = f"{where} ORDER BY position"
        if limit is not None:
            rest += " LIMIT ?"
            params.append(limit)
        return [_consent_entry(row) for row in self._query(CONSENTS, rest, params)]

    def access_log(
        self, resident_id: str, *, limit: int, before: int | None = None
    ) -> list[AccessEntry]:
        """Every access attempt on the resident's data, newest first."""
        where, params = "WHERE resident_id = ?", list[Any]([resident_id])
        if before is not None:
            where += " AND position < ?"
            params.append(before)
        rows = self._query(ACCESS, f"{where} ORDER BY position DESC LIMIT ?", (*params, limit))
        return [self._access_entry(row) for row in rows]

    def accesses(
        self,
        *,
        limit: int,
        after: int | None = None,
        resident_id: str | None = None,
        department: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        officer: str | None = None,
        purpose: str | None = None,
        allowed: bool | None = None,
    ) -> list[AccessEntry]:
        """Access attempts in log order, filtered, for auditors."""
        where, params = _access_filter(
            after=after, resident_id=resident_id, department=department, since=since,
            until=until, officer=officer, purpose=purpose, allowed=allowed,
        )
        rows = self._query(ACCESS, f"{where} ORDER BY position LIMIT ?", (*params, limit))
        return [self._access_entry(row) for row in rows]

    def access_counts(
        self,
        *,
        resident_id: str | None = None,
        department: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        officer: str | None = None,
        purpose: str | None = None,
        allowed: bool | None = None,
    ) -> list[AccessCount]:
        """How many access attempts the filters of :meth:`accesses` find, by the hour they
        were made in, department, outcome and first reason: for an auditor's charts."""
        where, params = _access_filter(
            after=None, resident_id=resident_id, department=department, since=since,
            until=until, officer=officer, purpose=purpose, allowed=allowed,
        )
        hour = "substr(at, 1, 13)"
        rows = self._select(
            ACCESS, f"{hour}, department, allowed, reason_codes, COUNT(*)",
            f"{where} GROUP BY {hour}, department, allowed, reason_codes", params,
        )
        counts: dict[tuple[datetime, str, bool, str | None], int] = {}
        for at, dept, was_allowed, codes, count in rows:
            reasons = json.loads(codes)
            key = (datetime.strptime(at, "%Y-%m-%dT%H").replace(tzinfo=UTC), dept,
                   bool(was_allowed), None if was_allowed or not reasons else reasons[0])
            counts[key] = counts.get(key, 0) + int(count)
        return [AccessCount(*key, n) for key, n in sorted(counts.items(), key=lambda kv: kv[0][0])]

    def figures(self) -> dict[str, list[dict[str, Any]]]:
        """For the dashboard: documents by type and trust level; fetches by department,
        outcome and first reason."""
        documents = self._select(
            LIBRARY, "doc_type, trust_level, COUNT(*)",
            "WHERE status = 'active' GROUP BY doc_type, trust_level ORDER BY doc_type, trust_level",
            (),
        )
        fetches = self._select(
            ACCESS, "department, allowed, reason_codes, COUNT(*)",
            "WHERE action = 'fetch' GROUP BY department, allowed, reason_codes "
            "ORDER BY department", (),
        )
        by_reason: dict[tuple[str, str, str], int] = {}
        for department, allowed, codes, count in fetches:
            reasons = json.loads(codes)
            key = (department, "allowed" if allowed else "denied",
                   reasons[0] if reasons else "allowed")
            by_reason[key] = by_reason.get(key, 0) + int(count)
        return {
            "documents": [
                {"doc_type": t, "trust_level": level, "count": int(n)} for t, level, n in documents
            ],
            "fetches": [
                {"department": d, "outcome": o, "reason": r, "count": n}
                for (d, o, r), n in sorted(by_reason.items())
            ],
        }

    def applications(
        self, resident_id: str, *, limit: int, before: int | None = None
    ) -> list[ApplicationEntry]:
        """The resident's applications, newest first."""
        where, params = "WHERE resident_id = ?", list[Any]([resident_id])
        if before is not None:
            where += " AND position < ?"
            params.append(before)
        rows = self._query(APPLICATIONS, f"{where} ORDER BY position DESC LIMIT ?",
                           (*params, limit))
        return [_application_entry(row) for row in rows]

    def queue(
        self,
        department: str,
        *,
        limit: int,
        status: str | None = None,
        after: tuple[int, int] | None = None,
    ) -> list[QueuedEntry]:
        """The applications waiting on the department, soonest due first (those returned
        to the resident last), from after ``(due, position)``."""
        columns = ", ".join(f"a.{name}" for name in APPLICATIONS.names)
        where, params = "WHERE q.department = ?", list[Any]([department])
        if status is not None:
            where += " AND a.status = ?"
            params.append(status)
        if after is not None:
            where += " AND (q.due > ? OR (q.due = ? AND q.position > ?))"
            params += [after[0], after[0], after[1]]
        rows = self._select(
            WORK_QUEUE, f"{columns}, q.due AS queue_due, q.position AS queue_position",
            f"q JOIN {JOINED} a ON a.application_id = q.application_id {where} "
            "ORDER BY q.due, q.position LIMIT ?", (*params, limit), joined=APPLICATIONS,
        )
        width = len(APPLICATIONS.names)
        return [
            QueuedEntry(_application_entry(APPLICATIONS.read(row[:width])), int(row[width]),
                        int(row[width + 1]))
            for row in rows
        ]

    def overdue(
        self, now: datetime, *, units: Set[str], limit: int, after: tuple[int, int] | None = None
    ) -> list[QueuedEntry]:
        """Open applications of windows of ``units`` ('' online) past their due moment
        ``now``, the longest overdue first, from after ``(due, position)``."""
        where, params = _overdue(now, units)
        if after is not None:
            due, position = after
            where += " AND (due_at > ? OR (due_at = ? AND position > ?))"
            moment = stamp(_from_due(due))
            params += [moment, moment, position]
        rows = self._query(APPLICATIONS, f"{where} ORDER BY due_at, position LIMIT ?",
                           (*params, limit))
        entries = [_application_entry(row) for row in rows]
        return [QueuedEntry(e, due_order(e.due_at), e.position) for e in entries]

    def tallies(
        self, *, units: Set[str], since: date | None, until: date | None
    ) -> list[tuple[Where, Tally]]:
        """Supervision's daily sums over the days from ``since`` to ``until`` (both
        included), by unit, department and service (:class:`vault.supervision.Tallies`)."""
        counts = [n for n in SERVICE_DAYS.names if n not in SERVICE_DAYS.key]
        where = f"WHERE unit IN ({_marks(units)})"
        params: list[Any] = sorted(units)
        for clause, day in (("day >= ?", since), ("day <= ?", until)):
            if day is not None:
                where += f" AND {clause}"
                params.append(day.isoformat())
        rows = self._select(
            SERVICE_DAYS, "unit, department, service_id, "
            + ", ".join(f"SUM({n}) AS {n}" for n in counts),
            f"{where} GROUP BY unit, department, service_id", params,
        )
        return [(Where(*row[:3]), Tally(**dict(zip(counts, map(int, row[3:]), strict=True))))
                for row in rows]

    def overdue_counts(self, *, units: Set[str], now: datetime) -> list[tuple[Where, int]]:
        """How many open applications of ``units`` are past their due moment ``now``."""
        where, params = _overdue(now, units)
        rows = self._select(APPLICATIONS, "unit, department, service_id, COUNT(*)",
                            f"{where} GROUP BY unit, department, service_id", params)
        return [(Where(*row[:3]), int(row[3])) for row in rows]

    def _query(self, table: Table, rest: str, params: Params) -> list[Any]:
        """Whole rows of ``table`` in the serving generation, readable by column name."""
        return [table.read(row) for row in self._select(table, table.select, rest, params)]

    def _select(
        self, table: Table, columns: str, rest: str, params: Params,
        *, joined: Table | None = None,
    ) -> list[tuple[Any, ...]]:
        """``SELECT columns FROM table rest`` in the serving generation, where
        :data:`JOINED` in ``rest`` names the ``joined`` view's table of that generation."""
        try:
            return self._select_once(table, columns, rest, params, joined)
        except Exception as e:
            # A rebuild put a new generation in service and dropped this one between
            # reading which serves and reading from it: read again, from the new one.
            if not self.db.missing_table(e):
                raise
        return self._select_once(table, columns, rest, params, joined)

    def _select_once(
        self, table: Table, columns: str, rest: str, params: Params, joined: Table | None
    ) -> list[tuple[Any, ...]]:
        with self.db.read() as run:
            generation = active_generation(run, self.db)
            if joined is not None:
                rest = rest.replace(JOINED, joined.name(self.db, generation))
            return run(f"SELECT {columns} FROM {table.name(self.db, generation)} {rest}",
                       params)

    def _library_entry(self, row: Any) -> LibraryEntry:
        personal = open_sealed(
            self.keys, row.resident_id, row.personal, f"view:document:{row.document_id}"
        ) or {}
        return LibraryEntry(
            document_id=row.document_id, resident_id=row.resident_id,
            position=int(row.position), doc_type=row.doc_type, title=personal.get("title"),
            filename=personal.get("filename"), sha256=personal.get("sha256"),
            content_type=row.content_type, size=int(row.size),
            trust_level=TrustLevel(row.trust_level), issuer=row.issuer,
            status=DocumentStatus(row.status),
            expires_at=unstamp(row.expires_at), created_at=_when(row.created_at),
            replaces=row.replaces, superseded_by=row.superseded_by,
            reuse_count=int(row.reuse_count),
        )

    def _access_entry(self, row: Any) -> AccessEntry:
        personal = open_access_personal(self.keys, row.resident_id, row.access_id, row.personal)
        return AccessEntry(
            access_id=row.access_id, position=int(row.position), resident_id=row.resident_id,
            officer=row.officer, department=row.department, document_id=row.document_id,
            doc_type=row.doc_type, purpose=row.purpose if row.action == "fetch" else None,
            consent_id=row.consent_id,
            allowed=bool(row.allowed), reason_codes=tuple(json.loads(row.reason_codes)),
            reasons=tuple(personal["reasons"]) if personal else None,
            policy_version=row.policy_version, rule=row.rule, request_id=row.request_id,
            at=_when(row.at), action=row.action, undelivered=row.undelivered,
        )


def _access_filter(
    *, after: int | None, resident_id: str | None, department: str | None,
    since: datetime | None, until: datetime | None, officer: str | None, purpose: str | None,
    allowed: bool | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause of an auditor's search of the access log, and its parameters."""
    clauses, params = [], list[Any]()
    for clause, value in (
        ("position > ?", after),
        ("resident_id = ?", resident_id),
        ("department = ?", department),
        ("at >= ?", stamp(since)),
        ("at < ?", stamp(until)),
        ("officer = ?", officer),
        ("action = 'fetch' AND purpose = ?", purpose),
        ("allowed = ?", None if allowed is None else int(allowed)),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _consent_entry(row: Any) -> ConsentEntry:
    return ConsentEntry(
        consent_id=row.consent_id, resident_id=row.resident_id, position=int(row.position),
        department=row.department, doc_types=tuple(json.loads(row.doc_types)),
        purpose=row.purpose, valid_from=_when(row.valid_from),
        valid_until=_when(row.valid_until), max_uses=row.max_uses, uses=int(row.uses),
        revoked_at=unstamp(row.revoked_at), granted_at=_when(row.granted_at),
    )


def _application_entry(row: Any) -> ApplicationEntry:
    return ApplicationEntry(
        application_id=row.application_id, resident_id=row.resident_id,
        position=int(row.position), service_id=row.service_id, department=row.department,
        unit=row.unit or None, channel=row.channel, status=row.status,
        accepted_at=_when(row.accepted_at), due_at=unstamp(row.due_at),
        decided_at=unstamp(row.decided_at),
        on_time=None if row.on_time is None else bool(row.on_time),
        working_days=row.working_days, materials_reused=int(row.materials_reused),
        materials_brought=int(row.materials_brought), rating=row.rating,
    )


def _marks(values: Set[str]) -> str:
    """The placeholders of ``IN (…)`` for ``values`` (NULL for none: it matches nothing)."""
    return ", ".join("?" * len(values)) or "NULL"


def _overdue(now: datetime, units: Set[str]) -> tuple[str, list[Any]]:
    """Open applications (their clock running) of windows of ``units`` past their due
    moment ``now``: the where clause and its parameters, ``units`` sorted."""
    return (f"WHERE status IN ('accepted', 'in-review') AND due_at < ? AND unit IN "
            f"({_marks(units)})", [stamp(now), *sorted(units)])


def _from_due(due: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=due)


def _when(text: str) -> datetime:
    moment = unstamp(text)
    assert moment is not None
    return moment
