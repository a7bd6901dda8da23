"""绩效监督: a supervisor's dashboard — their unit's figures for a period, by the units under
it (drilled down 市 → 区 → 街道 → 社区 within their reach), by department and by service, the
same figures over time, charted, and the applications overdue now, each with a page.

The figures are :func:`vault.supervision.figures`, as ``GET /v1/supervision/figures`` gives
them; the overdue list is ``Views.overdue`` over the same reach, as
``GET /v1/supervision/overdue`` gives it. A unit outside the supervisor's reach does not
exist to them (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from math import ceil
from typing import Any

from babel.dates import format_date, format_skeleton
from babel.numbers import format_decimal, format_percent
from fastapi import APIRouter, Request
from fastapi.responses import Response

from adapters.http.deps import ApplicationsDep, CataloguesDep, ClockDep, ViewsDep, viewer_of
from adapters.web.i18n import LOCALES, Language, language_of, translations
from adapters.web.pages import LANGUAGE_COOKIE, error_page, render, see_other, signed_in
from adapters.web.sessions import Session
from policy.catalogue_entries import Catalogue, Kind
from projections.queries import Views
from vault.errors import InvalidInput, NotFound, VaultError
from vault.services.applications import Applications
from vault.supervision import ONLINE, By, Figures, figures, scope
from vault.workdays import CHINA

router = APIRouter(include_in_schema=False)
PERIOD_DAYS = 30
"""The period shown unless another is asked for: the last 30 days, today included."""
OVERDUE_SHOWN = 100
"""The most overdue applications listed (the longest overdue first)."""
MOST_POINTS = 13
"""The most points a chart over time has: daily, weekly, or longer steps for long periods."""
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
"""The days a period may name (far enough from the calendar's ends to count days on)."""
KINDS: dict[By, Kind] = {"unit": "unit", "department": "department", "service": "service"}


@dataclass(frozen=True)
class Row:
    """A line of figures: whose they are, in the reader's language, and where to drill down."""

    name: str
    figures: Figures
    href: str | None = None


@dataclass(frozen=True)
class Overdue:
    application_id: str
    number: str
    service: str
    unit: str
    department: str
    due_at: datetime | None
    working_days: int


class Numbers:
    """Numbers (and days) as the reader's locale writes them (Babel)."""

    def __init__(self, language: Language) -> None:
        self.locale = LOCALES[language]

    def count(self, value: float | None) -> str:
        return "—" if value is None else format_decimal(value, locale=self.locale)

    def share(self, value: float | None) -> str:
        return "—" if value is None else format_percent(value, "#,##0.0%", locale=self.locale)

    def day(self, value: date) -> str:
        return format_date(value, "long", locale=self.locale)


@router.get("/supervision")
def dashboard(
    request: Request, catalogues: CataloguesDep, views: ViewsDep,
    applications: ApplicationsDep, clock: ClockDep,
    unit: str | None = None, since: str | None = None, until: str | None = None,
) -> Response:
    """The figures of the supervisor's unit, or of a unit under it, for a period."""
    session = signed_in(request, "supervisor")
    if session is None or session.principal.unit is None:
        return see_other("/signin")
    try:
        return _dashboard(request, session, catalogues.current(), views, applications,
                          clock.now(), unit, since, until)
    except VaultError as e:
        return error_page(request, session, e)


@router.get("/supervision/applications/{application_id}")
def application_page(
    request: Request, application_id: str, catalogues: CataloguesDep,
    applications: ApplicationsDep,
) -> Response:
    """An application in the supervisor's reach, as ``GET /v1/applications/{id}`` shows it
    to them: where it stands against its time limit and its steps, not its form (others': 404)."""
    session = signed_in(request, "supervisor")
    if session is None:
        return see_other("/signin")
    try:
        application = applications.seen_by(viewer_of(session.principal), application_id)
    except VaultError as e:
        return error_page(request, session, e)
    language = language_of(request.cookies.get(LANGUAGE_COOKIE))
    return render(
        request, "supervision_application.html", session=session, application=application,
        timing=applications.timing(application),
        late=applications.working_days_overdue(application),
        names=_Names(catalogues.current(), language), n=Numbers(language),
    )


def _dashboard(
    request: Request, session: Session, catalogue: Catalogue, views: Views,
    applications: Applications, now: datetime, asked_unit: str | None,
    since_text: str | None, until_text: str | None,
) -> Response:
    mine = session.principal.unit or ""
    unit = mine if asked_unit is None else asked_unit
    if not catalogue.knows("unit", unit) or not catalogue.within(unit, mine):
        raise NotFound(f"unit {unit} not found")
    today = now.astimezone(CHINA).date()
    until = _day("until", until_text) if until_text else today
    since = _day("since", since_text) if since_text else until - timedelta(days=PERIOD_DAYS - 1)
    if since > until:
        raise InvalidInput("since", "comes after until")
    language = language_of(request.cookies.get(LANGUAGE_COOKIE))
    names = _Names(catalogue, language)
    period = f"since={since.isoformat()}&until={until.isoformat()}"

    def rows(by: By) -> tuple[Figures, list[Row]]:
        found = figures(views, catalogue, unit=unit, by=by, since=since, until=until, now=now)
        return found[0], [_row(names, by, unit, period, f) for f in found[1:]]

    whole, by_unit = rows("unit")
    by_department, by_service = rows("department")[1], rows("service")[1]
    return render(
        request, "supervision.html", session=session, unit=catalogue.unit(unit),
        unit_name=names.of("unit", unit), whole=whole,
        trail=[(names.of("unit", u.id), u.id) for u in reversed(catalogue.ancestry(unit))
               if catalogue.within(u.id, mine)],
        tables=(("unit", by_unit), ("department", by_department), ("service", by_service)),
        since=since, until=until, n=Numbers(language),
        charts=_charts(names, by_unit, by_service, whole,
                       _over_time(views, catalogue, unit, since, until, now, language)),
        overdue=_overdue(views, applications, catalogue, names, unit, now),
    )


def _day(name: str, text: str) -> date:
    try:
        found = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(name, "is not a day (YYYY-MM-DD)") from None
    if not FIRST_DAY <= found <= LAST_DAY:
        raise InvalidInput(name, f"is not between {FIRST_DAY} and {LAST_DAY}")
    return found


class _Names:
    """Catalogue entries' names in the reader's language (the identifier if unknown)."""

    def __init__(self, catalogue: Catalogue, language: Language) -> None:
        self.catalogue, self.language = catalogue, language
        self.text = translations(language).gettext

    def of(self, kind: Kind, identifier: str | None) -> str:
        if kind == "unit" and identifier in (None, "", ONLINE):
            return self.text("网上申请")
        found = self.catalogue.entries.get((kind, identifier or ""))
        if found is None:
            return identifier or ""
        return found.name_en if self.language == "en" else found.name_zh


def _row(names: _Names, by: By, unit: str, period: str, found: Figures) -> Row:
    name = names.of(KINDS[by], found.key)
    if by != "unit" or found.key == ONLINE:
        return Row(name, found)
    if found.key == unit:  # taken at the unit's own windows
        return Row(name + names.text("（本级窗口）"), found)
    return Row(name, found, f"/supervision?unit={found.key}&{period}")


def _over_time(
    views: Views, catalogue: Catalogue, unit: str, since: date, until: date, now: datetime,
    language: Language,
) -> list[tuple[str, Figures]]:
    """The unit's figures step by step over the period: by day, by week, or in longer
    steps, at most :data:`MOST_POINTS` of them."""
    days = (until - since).days + 1
    step = 1 if days <= 14 else 7 if days <= 7 * MOST_POINTS else ceil(days / MOST_POINTS)
    points = []
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=step - 1))
        [whole, *_] = figures(views, catalogue, unit=unit, by="unit", since=start, until=end,
                              now=now)
        points.append((format_skeleton("MMMd", start, locale=LOCALES[language]), whole))
        start = end + timedelta(days=1)
    return points


def _charts(
    names: _Names, by_unit: list[Row], by_service: list[Row], whole: Figures,
    over_time: list[tuple[str, Figures]],
) -> dict[str, dict[str, Any]]:
    """What each chart draws (``static/js/charts.js`` reads it from the page): the same
    numbers as the tables."""
    text = names.text
    units = [(r.name, r.figures) for r in by_unit]
    decided = [(r.name, r.figures) for r in by_service if r.figures.decided]
    counts = {text("受理"): "accepted", text("办结"): "decided"}
    return {
        "units": _chart("bar", units, {**counts, text("当前超期"): "overdue"}),
        "on_time": _chart("bar", decided, {text("按时办结率"): "on_time_rate"},
                          horizontal=True, percent=True),
        "materials": {"kind": "pie", "categories": [text("复用材料"), text("提交材料")],
                      "series": [{"name": text("材料"), "data": [
                          whole.materials_reused, whole.materials_brought]}]},
        "over_time": _chart("line", over_time, counts),
    }


def _chart(kind: str, points: list[tuple[str, Figures]], series: dict[str, str],
           **options: bool) -> dict[str, Any]:
    """A chart of one figure or more (``series``: each one's name and field) at each point."""
    return {"kind": kind, "categories": [label for label, _ in points], **options,
            "series": [{"name": name, "data": [getattr(f, field) for _, f in points]}
                       for name, field in series.items()]}


def _overdue(
    views: Views, applications: Applications, catalogue: Catalogue, names: _Names, unit: str,
    now: datetime,
) -> tuple[list[Overdue], bool]:
    """The open applications in reach past their due moment, the longest overdue first
    (as many as :data:`OVERDUE_SHOWN`), and whether there are more."""
    entries = views.overdue(now, units=scope(catalogue, unit), limit=OVERDUE_SHOWN + 1)
    shown = []
    for entry in entries[:OVERDUE_SHOWN]:
        found = entry.application
        application = applications.application(found.application_id)
        shown.append(Overdue(
            application_id=found.application_id, number=application.number,
            service=names.of("service", found.service_id), unit=names.of("unit", found.unit),
            department=names.of("department", found.department),
            due_at=found.due_at, working_days=applications.working_days_overdue(application),
        ))
    return shown, len(entries) > OVERDUE_SHOWN
