"""Reading the read models: pages by log position (keyset), so writes going on never make
a page skip or repeat an item."""

from __future__ import annotations

import json
from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policy.scales import Grade
from projections.projector import open_access_personal, open_sealed
from projections.schema import active_generation, stamp, unstamp, view_table
from projections.sql import Database
from vault.ports import DataKeys


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
    trust_level: str
    issuer: str | None
    status: str
    expires_at: datetime | None
    created_at: datetime
    replaces: str | None
    superseded_by: str | None
    reuse_count: int


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

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used-up"
        if now < self.valid_from:
            return "not-yet-valid"
        if now >= self.valid_until:
            return "expired"
        return "active"


@dataclass(frozen=True)
class AccessEntry:
    access_id: str
    position: int
    resident_id: str
    officer: str
    department: str
    document_id: str
    doc_type: str | None
    purpose: str
    consent_id: str | None
    allowed: bool
    reason_codes: tuple[str, ...]
    reasons: tuple[str, ...] | None
    policy_version: str
    rule: str | None
    request_id: str
    at: datetime


@dataclass(frozen=True)
class ResidentEntry:
    resident_id: str
    grade: Grade | None
    erased: bool


_LIBRARY = (
    "document_id, resident_id, position, doc_type, personal, content_type, size, "
    "trust_level, issuer, status, expires_at, created_at, replaces, superseded_by, reuse_count"
)
_CONSENTS = (
    "consent_id, resident_id, position, department, doc_types, purpose, valid_from, "
    "valid_until, max_uses, uses, revoked_at, granted_at"
)
_ACCESS = (
    "access_id, position, resident_id, officer, department, document_id, doc_type, purpose, "
    "consent_id, allowed, reason_codes, personal, policy_version, rule, request_id, at"
)


class Views:
    """Queries over the generation of the views that is serving now."""

    def __init__(self, db: Database, keys: DataKeys) -> None:
        self.db = db
        self.keys = keys

    def resident(self, resident_id: str) -> ResidentEntry | None:
        rows = self._query(
            "residents", "resident_id, personal, erased", "WHERE resident_id = ?", (resident_id,)
        )
        if not rows:
            return None
        _, sealed, erased = rows[0]
        opened = open_sealed(self.keys, resident_id, sealed, f"view:resident:{resident_id}")
        grade = Grade(opened["grade"]) if opened else None
        return ResidentEntry(resident_id, grade, bool(erased))

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
            where += f" AND doc_type IN ({', '.join('?' * len(doc_types)) or 'NULL'})"
            params += sorted(doc_types)
        if unexpired_at is not None:
            where += " AND (expires_at IS NULL OR expires_at > ?)"
            params.append(stamp(unexpired_at))
        rows = self._query(
            "library", _LIBRARY, f"{where} ORDER BY position DESC LIMIT ?", (*params, limit)
        )
        return [self._library_entry(row) for row in rows]

    def consents(
        self, resident_id: str, *, limit: int, before: int | None = None
    ) -> list[ConsentEntry]:
        where, params = "WHERE resident_id = ?", list[Any]([resident_id])
        if before is not None:
            where += " AND position < ?"
            params.append(before)
        rows = self._query(
            "consents", _CONSENTS, f"{where} ORDER BY position DESC LIMIT ?", (*params, limit)
        )
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
        where = (
            "WHERE department = ? AND revoked_at IS NULL "
            "AND (max_uses IS NULL OR uses < max_uses) AND valid_from <= ? AND valid_until > ?"
        )
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
        return [_consent_entry(row) for row in self._query("consents", _CONSENTS, rest, params)]

    def access_log(
        self, resident_id: str, *, limit: int, before: int | None = None
    ) -> list[AccessEntry]:
        """Every access attempt on the resident's data, newest first."""
        where, params = "WHERE resident_id = ?", list[Any]([resident_id])
        if before is not None:
            where += " AND position < ?"
            params.append(before)
        rows = self._query(
            "access", _ACCESS, f"{where} ORDER BY position DESC LIMIT ?", (*params, limit)
        )
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
    ) -> list[AccessEntry]:
        """Access attempts in log order, filtered, for auditors."""
        clauses, params = [], []
        for clause, value in (
            ("position > ?", after),
            ("resident_id = ?", resident_id),
            ("department = ?", department),
            ("at >= ?", stamp(since)),
            ("at < ?", stamp(until)),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._query(
            "access", _ACCESS, f"{where} ORDER BY position LIMIT ?", (*params, limit)
        )
        return [self._access_entry(row) for row in rows]

    def figures(self) -> dict[str, list[dict[str, Any]]]:
        """For the dashboard: documents by type and trust level; fetches by department,
        outcome and first reason."""
        documents = self._query(
            "library", "doc_type, trust_level, COUNT(*)",
            "WHERE status = 'active' GROUP BY doc_type, trust_level ORDER BY doc_type, trust_level",
            (),
        )
        fetches = self._query(
            "access", "department, allowed, reason_codes, COUNT(*)",
            "GROUP BY department, allowed, reason_codes ORDER BY department", (),
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

    def _query(
        self, view: str, columns: str, rest: str, params: tuple[Any, ...] | list[Any]
    ) -> list[tuple[Any, ...]]:
        try:
            return self._query_once(view, columns, rest, params)
        except Exception as e:
            # A rebuild put a new generation in service and dropped this one between
            # reading which serves and reading from it: read again, from the new one.
            if not self.db.missing_table(e):
                raise
        return self._query_once(view, columns, rest, params)

    def _query_once(
        self, view: str, columns: str, rest: str, params: tuple[Any, ...] | list[Any]
    ) -> list[tuple[Any, ...]]:
        with self.db.transaction(commit=False) as run:
            table = view_table(self.db, view, active_generation(run, self.db))
            return run(f"SELECT {columns} FROM {table} {rest}", params)

    def _library_entry(self, row: tuple[Any, ...]) -> LibraryEntry:
        (document_id, resident_id, position, doc_type, sealed, content_type, size, trust,
         issuer, status, expires_at, created_at, replaces, superseded_by, reuse_count) = row
        personal = open_sealed(
            self.keys, resident_id, sealed, f"view:document:{document_id}"
        ) or {}
        return LibraryEntry(
            document_id, resident_id, int(position), doc_type, personal.get("title"),
            personal.get("filename"), personal.get("sha256"), content_type, int(size), trust,
            issuer, status, unstamp(expires_at), _when(created_at), replaces, superseded_by,
            int(reuse_count),
        )

    def _access_entry(self, row: tuple[Any, ...]) -> AccessEntry:
        (access_id, position, resident_id, officer, department, document_id, doc_type, purpose,
         consent_id, allowed, codes, sealed, policy_version, rule, request_id, at) = row
        personal = open_access_personal(self.keys, resident_id, access_id, sealed)
        reasons = tuple(personal["reasons"]) if personal else None
        return AccessEntry(
            access_id, int(position), resident_id, officer, department, document_id, doc_type,
            purpose, consent_id, bool(allowed), tuple(json.loads(codes)), reasons,
            policy_version, rule, request_id, _when(at),
        )


def _consent_entry(row: tuple[Any, ...]) -> ConsentEntry:
    (consent_id, resident_id, position, department, doc_types, purpose, valid_from,
     valid_until, max_uses, uses, revoked_at, granted_at) = row
    return ConsentEntry(
        consent_id, resident_id, int(position), department, tuple(json.loads(doc_types)),
        purpose, _when(valid_from), _when(valid_until), max_uses, int(uses),
        unstamp(revoked_at), _when(granted_at),
    )


def _when(text: str) -> datetime:
    moment = unstamp(text)
    assert moment is not None
    return moment
