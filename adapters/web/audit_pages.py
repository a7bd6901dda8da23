"""审计: the auditor's pages — searching every access attempt with charts of them, the
ledger's status and its verification, a resident's state replayed at a moment, every
decision made again, and evidence bundles — on the services the auditor's API and CLI use
(:mod:`adapters.http.audit`, ``civicvault audit``)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from adapters.eventstore import RecordedLog
from adapters.http.deps import AuditDep, CaughtUp, ClockDep, LedgerDep, ViewsDep
from adapters.http.paging import decode_cursor, paged
from adapters.web.deps import EventsDep, SigningDep
from adapters.web.pages import (
    SECURITY_HEADERS,
    catalogue_names,
    checked_form,
    error_page,
    render,
    see_other,
    signed_in,
)
from adapters.web.sessions import Session
from projections.evidence import NothingToExport, export_bundle
from projections.ledger import Ledger
from projections.ledger import verify as verify_ledger
from projections.queries import AccessCount, Views
from vault.errors import AccessNotFound, InvalidInput, VaultError
from vault.ids import check_resident_id
from vault.inputs import check_known
from vault.markers import Erased
from vault.workdays import CHINA

router = APIRouter(include_in_schema=False)
PAGE = 50
MAX_CHART_DAYS = 400
_OFFICER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")



def _day(field: str, text: str) -> date | None:
    """A day of the form's date field (China time), or None if left empty."""
    if not text:
        return None
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        found = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(field, "must be a day written YYYY-MM-DD") from None
    if not 1900 <= found.year <= 2199:
        raise InvalidInput(field, "must be a day from 1900 to 2199")
    return found


def _start_of(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), CHINA)


@dataclass(frozen=True)
class Search:
    """An auditor's search of the access log: every filter checked as the API checks it;
    a period is from the start of its first day to the end of its last, in China time."""

    resident_id: str = ""
    department: str = ""
    officer: str = ""
    purpose: str = ""
    outcome: str = ""
    since: str = ""
    until: str = ""

    def check(self) -> None:
        if self.resident_id:
            check_resident_id(self.resident_id)
        if self.department:
            check_known("department", "department", self.department)
        if self.officer and not _OFFICER.fullmatch(self.officer):
            raise InvalidInput("officer", "is not an officer's id")
        if self.purpose:
            check_known("purpose", "service", self.purpose)
        if self.outcome not in ("", "allowed", "denied"):
            raise InvalidInput("outcome", "must be allowed or denied")
        first, last = _day("since", self.since), _day("until", self.until)
        if first and last and first > last:
            raise InvalidInput("until", "must not be before since")

    def filters(self) -> dict[str, Any]:
        """The filters, as :meth:`Views.accesses` takes them."""
        last = _day("until", self.until)
        return {
            "resident_id": self.resident_id or None,
            "department": self.department or None,
            "officer": self.officer or None,
            "purpose": self.purpose or None,
            "allowed": {"allowed": True, "denied": False}.get(self.outcome),
            "since": _start_of(_day("since", self.since)),
            "until": _start_of(last + timedelta(days=1)) if last else None,
        }

    def query(self, **more: str) -> str:
        """The search as a link's query, with ``more``."""
        given = {k: v for k, v in vars(self).items() if v}
        return urlencode({**given, **more})


def _charts(counts: list[AccessCount], search: Search) -> dict[str, Any]:
    """What the charts draw: accesses per day (China time) allowed and denied, denials by
    their first reason, accesses by department and outcome, and each department's
    accesses per day."""
    allowed: Counter[date] = Counter()
    denied: Counter[date] = Counter()
    reasons: Counter[str] = Counter()
    by_department: dict[str, Counter[str]] = {}
    for c in counts:
        day = c.hour.astimezone(CHINA).date()
        (allowed if c.allowed else denied)[day] += c.count
        if not c.allowed:
            reasons[c.reason or "-"] += c.count
        by_department.setdefault(c.department, Counter())[
            "allowed" if c.allowed else "denied"] += c.count
    seen = sorted({*allowed, *denied})
    first = _day("since", search.since) or (seen[0] if seen else None)
    last = _day("until", search.until) or (seen[-1] if seen else None)
    days: list[date] = []
    if first is not None and last is not None:
        last = min(last, first + timedelta(days=MAX_CHART_DAYS - 1))
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    departments = sorted(by_department)
    per_day: dict[str, Counter[date]] = {d: Counter() for d in departments}
    for c in counts:
        per_day[c.department][c.hour.astimezone(CHINA).date()] += c.count
    return {
        "days": [d.isoformat() for d in days],
        "allowed": [allowed[d] for d in days],
        "denied": [denied[d] for d in days],
        "reasons": [r for r, _ in reasons.most_common()],
        "reason_counts": [n for _, n in reasons.most_common()],
        "department_ids": departments,
        "department_allowed": [by_department[d]["allowed"] for d in departments],
        "department_denied": [by_department[d]["denied"] for d in departments],
        "department_days": [[per_day[d][day] for day in days] for d in departments],
        "total": sum(c.count for c in counts),
    }


def _auditor(request: Request) -> Session | None:
    return signed_in(request, "auditor")


@router.get("/audit")
def search_page(
    request: Request, views: ViewsDep, resident_id: str = "", department: str = "",
    officer: str = "", purpose: str = "", outcome: str = "", since: str = "", until: str = "",
    cursor: str = "",
) -> Response:
    """Search the access log (oldest first, a page at a time) with charts of what it found."""
    session = _auditor(request)
    if session is None:
        return see_other("/signin")
    search = Search(resident_id.strip(), department, officer.strip(), purpose, outcome,
                    since, until)
    try:
        search.check()
        after = decode_cursor(cursor)
    except InvalidInput as e:
        return render(request, "audit.html", status=422, session=session, search=search,
                      message=str(e), entries=None, charts=None, next_cursor=None,
                      **catalogue_names())
    filters = search.filters()
    entries, next_cursor = paged(views.accesses(limit=PAGE + 1, after=after, **filters), PAGE)
    charts = _charts(views.access_counts(**filters), search)
    return render(request, "audit.html", session=session, search=search, message=None,
                  entries=entries, charts=charts, next_cursor=next_cursor, after=after,
                  **catalogue_names())


@router.get("/audit/ledger")
def ledger_page(request: Request, events: EventsDep, ledger: LedgerDep) -> Response:
    """The ledger's status: how many events it holds of the log's, and its newest signed
    checkpoint."""
    session = _auditor(request)
    if session is None:
        return see_other("/signin")
    return _ledger(request, session, ledger_status(events, ledger), verdict=None)


def ledger_status(events: RecordedLog, ledger: Ledger) -> dict[str, Any]:
    return {"head": events.head(), "size": ledger.size(),
            "checkpoint": ledger.latest_checkpoint()}


def _ledger(request: Request, session: Session, status: dict[str, Any], verdict: Any) -> Response:
    fragment = request.headers.get("HX-Request") == "true" and verdict is not None
    return render(request, "audit_verdict.html" if fragment else "audit_ledger.html",
                  session=session, verdict=verdict, **status)


@router.get("/audit/ledger/verify")
def verify_page(
    request: Request, events: EventsDep, ledger: LedgerDep, signing: SigningDep
) -> Response:
    """``civicvault audit verify``: the tree recomputed from the event store and checked
    against the ledger and every signed checkpoint. It only reads, so it is a GET."""
    session = _auditor(request)
    if session is None:
        return see_other("/signin")
    verdict = verify_ledger(events, ledger, signing.public_keys("checkpoints"))
    return _ledger(request, session, ledger_status(events, ledger), verdict)


@router.get("/audit/replay")
def replay_page(
    request: Request, audit: AuditDep, resident_id: str = "", at: str = ""
) -> Response:
    """A resident's documents, consents and grade as they stood at a moment (China time),
    rebuilt from the events, as ``GET /v1/audit/replay`` answers."""
    session = _auditor(request)
    if session is None:
        return see_other("/signin")
    resident_id = resident_id.strip()
    context: dict[str, Any] = {"resident_id": resident_id, "at": at, "replay": None,
                               "message": None, **catalogue_names()}
    if not resident_id and not at:
        return render(request, "audit_replay.html", session=session, **context)
    try:
        check_resident_id(resident_id)
        if not _MOMENT.fullmatch(at):
            raise InvalidInput("at", "must be a moment written YYYY-MM-DDTHH:MM (China time)")
        try:
            moment = datetime.fromisoformat(at).replace(tzinfo=CHINA)
        except ValueError:
            raise InvalidInput("at", "is no such moment") from None
        replay = audit.replay_resident(resident_id, moment)
    except InvalidInput as e:
        return render(request, "audit_replay.html", status=422, session=session,
                      **{**context, "message": str(e)})
    except VaultError as e:
        return error_page(request, session, e)
    return render(request, "audit_replay.html", session=session, shown=_shown,
                  **{**context, "replay": replay, "moment": moment})


def _shown(value: object) -> str | None:
    """A personal field as the API shows it: None once its owner was erased."""
    return None if value is None or isinstance(value, Erased) else str(value)


@router.get("/audit/readjudicate")
def readjudicate_form(request: Request) -> Response:
    session = _auditor(request)
    if session is None:
        return see_other("/signin")
    return render(request, "audit_readjudicate.html", session=session, report=None,
                  since="", until="", message=None)


@router.post("/audit/readjudicate")
async def readjudicate(request: Request, audit: AuditDep) -> Response:
    """Every recorded decision in the period made again (``POST /v1/audit/readjudicate``):
    whether each was found equal, and those that were not."""
    session = _auditor(request)
    if session is None:
        return see_other("/signin")
    form = await checked_form(request, session)
    since, until = form.get("since", ""), form.get("until", "")
    try:
        filters = Search(since=since, until=until)
        filters.check()
        window = filters.filters()
    except InvalidInput as e:
        return render(request, "audit_readjudicate.html", status=422, session=session,
                      report=None, since=since, until=until, message=str(e))
    report = await run_in_threadpool(audit.readjudicate, window["since"], window["until"])
    fragment = request.headers.get("HX-Request") == "true"
    return render(request, "audit_report.html" if fragment else "audit_readjudicate.html",
                  session=session, report=report, since=since, until=until, message=None)


@router.post("/audit/evidence")
async def evidence(request: Request, views: ViewsDep, ledger: LedgerDep, signing: SigningDep,
                   clock: ClockDep, caught_up: CaughtUp) -> Response:
    """An evidence bundle to download, as ``civicvault audit export`` writes it: a
    resident's access events in a period, or one access event, each with its inclusion
    proof against a signed checkpoint, the whole signed. It may sign a new checkpoint, so
    it is a POST behind the session's CSRF token."""
    session = _auditor(request)
    if session is None:
        return see_other("/signin")
    form = await checked_form(request, session)
    try:
        resident_id, since, until = await run_in_threadpool(_period_of, views, form)
        key = signing.current("checkpoints")
        exported = await run_in_threadpool(partial(
            export_bundle, views, ledger, resident_id=resident_id, since=since, until=until,
            sign=lambda message: (key.kid, key.private_key.sign(message)),
            now=clock.now(),
        ))
    except VaultError as e:
        return error_page(request, session, e)
    except NothingToExport as e:
        return render(request, "error.html", status=409, session=session, message=str(e),
                      code="nothing-to-export")
    name = f"evidence-{resident_id}" + (f"-event-{form['event']}" if form.get("event") else "")
    return Response(
        json.dumps(exported.bundle, ensure_ascii=False, indent=1).encode(),
        media_type="application/json",
        headers={**SECURITY_HEADERS,
                 "Content-Disposition": f'attachment; filename="{name}.json"'},
    )


def _period_of(views: Views, form: dict[str, str]) -> tuple[str, datetime | None,
                                                              datetime | None]:
    """Whose access events a bundle holds and when: one event's (``event``, its position
    in the log: the resident's events of that very microsecond), or a resident's in the
    search's period."""
    event = form.get("event", "")
    if event:
        position = decode_cursor(event)
        found = views.accesses(limit=1, after=(position or 1) - 1)
        if not found or found[0].position != position:
            raise AccessNotFound(f"event {position} is no access event of the log")
        return found[0].resident_id, found[0].at, found[0].at + timedelta(microseconds=1)
    search = Search(resident_id=form.get("resident_id", ""), since=form.get("since", ""),
                    until=form.get("until", ""))
    if not search.resident_id:
        raise InvalidInput("resident_id", "name the resident whose evidence to export")
    search.check()
    window = search.filters()
    return search.resident_id, window["since"], window["until"]

