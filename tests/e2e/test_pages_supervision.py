"""绩效监督 in a real browser (Debian's Chromium driven by Playwright, the demo city on a live
loopback server): 赵刚, supervisor of 东城区, reads the figures the supervision service
computes — by unit, department and service, for the period he picks — drills down to a
street and a community, sees the charts drawn by ECharts without a single CSP violation,
and the overdue applications in his reach; in Chinese and in English. A unit outside his
reach does not exist to him, a bad period is refused, and no one else gets the page."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from babel.dates import format_date
from babel.numbers import format_decimal
from playwright.sync_api import expect

from keys.tokens import Principal
from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, demo, open_page, shot, sign_in
from vault.supervision import BY, Figures, figures, scope
from vault.workdays import CHINA

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser", "demo"]  # fixtures

FIELDS = ("accepted", "decided", "on_time_rate", "avg_working_days", "overdue",
          "materials_reused", "materials_brought", "trips_saved", "rating_avg")
WATCH_CSP = """
document.addEventListener("securitypolicyviolation",
  (e) => window.cspViolation(
    `${e.violatedDirective} ${e.sourceFile} ${e.target.outerHTML?.slice(0, 120)}`));
"""
"""Each page reports what its CSP refused to the test (which keeps them across pages)."""


def _axe(page: Any) -> list[str]:
    return [f"{v['id']} ({v['impact']})" for v in Axe().run(page).response["violations"]]


def _expected(demo: LiveApi, unit: str, since: date, until: date) -> dict[str, list[Figures]]:
    services = demo.services
    return {by: figures(services.views, services.catalogues.current(), unit=unit, by=by,
                        since=since, until=until, now=services.clock.now()) for by in BY}


def _shown(page: Any, by: str) -> dict[str, tuple[str, ...]]:
    """Each row of a figures table (its key, the whole unit's in the footer) and its values
    as the page carries them."""
    rows = page.locator(f'table.figures[data-by="{by}"] tr[data-key]')
    return {row.get_attribute("data-key"): tuple(
        row.locator(f'td[data-field="{field}"]').get_attribute("data-value") for field in FIELDS)
        for row in rows.all()}


def _as_page_has_it(found: Figures) -> tuple[str, ...]:
    return tuple("" if getattr(found, f) is None else str(getattr(found, f)) for f in FIELDS)


def _period(page: Any) -> tuple[date, date]:
    return (date.fromisoformat(page.locator("#since").input_value()),
            date.fromisoformat(page.locator("#until").input_value()))


def _assert_figures_are_the_services(page: Any, demo: LiveApi, unit: str) -> dict[str, Any]:
    since, until = _period(page)
    expected = _expected(demo, unit, since, until)
    for by, rows in expected.items():
        if len(rows) == 1:  # nothing in the period: no table, says so
            assert page.locator(f'table.figures[data-by="{by}"]').count() == 0
            continue
        assert _shown(page, by) == {r.key: _as_page_has_it(r) for r in rows}, by
    return expected


def _assert_charts_drawn(page: Any) -> None:
    charts = page.locator("div.chart")
    assert charts.count() >= 3
    for chart in charts.all():
        chart.locator("canvas").first.wait_for()
        chart.hover()  # its tooltip is drawn too, and must not break the CSP


def _assert_overdue_list_is_the_views(page: Any, demo: LiveApi, unit: str) -> None:
    services = demo.services
    entries = services.views.overdue(
        services.clock.now(), units=scope(services.catalogues.current(), unit), limit=101)
    late = [services.applications.application(e.application.application_id) for e in entries]
    assert late, "the demo city has overdue applications"
    rows = page.locator("table.overdue tbody tr")
    assert [r.get_attribute("data-number") for r in rows.all()] == [a.number for a in late]
    assert [r.locator("td").last.get_attribute("data-value") for r in rows.all()] == [
        str(services.applications.working_days_overdue(a)) for a in late]


def test_a_supervisor_reads_the_figures_drills_down_and_reads_them_in_english(
    browser: Any, demo: LiveApi
) -> None:
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    violations: list[str] = []

    def refused(text: str) -> None:
        violations.append(text)

    page.expose_function("cspViolation", refused)  # (a bound method is not taken)
    page.add_init_script(WATCH_CSP)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, "supervisor", "/supervision")
    assert page.locator("h1").inner_text() == "绩效监督 · 东城区"

    # The last 30 days by default, figures as the supervision service computes them.
    since, until = _period(page)
    assert (until - since).days == 29
    assert until == demo.services.clock.now().astimezone(CHINA).date()
    _assert_figures_are_the_services(page, demo, "dongcheng")

    # Six weeks: an allowance approved on time and rated 5 at 和平里社区 comes in.
    six_weeks_ago = date.fromordinal(until.toordinal() - 41).isoformat()
    page.locator("#since").fill(six_weeks_ago)
    page.get_by_role("button", name="查询").click()
    page.wait_for_url(re.compile(rf"since={six_weeks_ago}"))
    # (the new figures are in once the period line names the new first day)
    expect(page.locator("p.note").first).to_contain_text(
        format_date(date.fromisoformat(six_weeks_ago), "long", locale="zh_CN"))
    expected = _assert_figures_are_the_services(page, demo, "dongcheng")
    six_weeks = _period(page)
    whole = expected["unit"][0]
    assert whole.decided >= 1
    assert (whole.on_time_rate, whole.rating_avg) == (1.0, 5.0)
    footer = page.locator('table.figures[data-by="unit"] tfoot')
    assert footer.locator('td[data-field="on_time_rate"]').inner_text() == "100.0%"
    assert footer.locator('td[data-field="accepted"]').inner_text() == format_decimal(
        whole.accepted, locale="zh_CN")
    assert page.locator('table.figures[data-by="department"]').inner_text().count("民政局") == 1
    _assert_charts_drawn(page)
    # The charts draw the tables' numbers: by unit, and over time steps that add up.
    units = json.loads(page.locator('[data-chart-key="units"]').get_attribute("data-chart"))
    assert [s["data"] for s in units["series"]] == [
        [getattr(f, field) for f in expected["unit"][1:]]
        for field in ("accepted", "decided", "overdue")]
    over_time = json.loads(page.locator('[data-chart-key="over_time"]').get_attribute("data-chart"))
    assert [sum(s["data"]) for s in over_time["series"]] == [whole.accepted, whole.decided]
    _assert_overdue_list_is_the_views(page, demo, "dongcheng")
    shot(page, "supervision-zh")

    # An overdue application's page: where it stands, not what the resident wrote.
    first = page.locator("table.overdue tbody tr").first
    number = first.get_attribute("data-number")
    first.locator("a").click()
    page.wait_for_url(re.compile(r"/supervision/applications/[0-9a-f-]{36}$"))
    application = demo.services.applications.application(page.url.rsplit("/", 1)[1])
    assert application.number == number
    assert page.locator("h1").inner_text() == f"生育登记 · {number}"
    late = page.locator("dd[data-late]").get_attribute("data-late")
    assert late == str(demo.services.applications.working_days_overdue(application))
    assert int(late) >= 1
    assert page.locator(".clock-overdue").count() == 1
    assert _axe(page) == []
    shot(page, "supervision-application-zh")
    page.go_back()

    # Drill down: 新华街道 (its community has the overdue birth registration), then 新华北社区.
    # (swapped in by htmx: the page, its scripts and ECharts stay; the URL follows)
    page.evaluate("window.__same_page = true")
    page.locator('table.figures[data-by="unit"] tr[data-key="xinhua-street"] a').click()
    page.wait_for_url(re.compile(r"unit=xinhua-street"))
    expect(page.locator("h1")).to_have_text("绩效监督 · 新华街道")
    assert page.evaluate("window.__same_page") is True
    assert page.title().startswith("绩效监督")
    assert page.locator("nav.trail a").all_inner_texts() == ["东城区"]
    assert _period(page) == six_weeks  # the period is kept
    _assert_figures_are_the_services(page, demo, "xinhua-street")
    _assert_overdue_list_is_the_views(page, demo, "xinhua-street")
    _assert_charts_drawn(page)
    shot(page, "supervision-street-zh")
    page.locator('table.figures[data-by="unit"] tr[data-key="xinhua-north"] a').click()
    page.wait_for_url(re.compile(r"unit=xinhua-north"))
    expect(page.locator("h1")).to_have_text("绩效监督 · 新华北社区")
    _assert_figures_are_the_services(page, demo, "xinhua-north")
    _assert_overdue_list_is_the_views(page, demo, "xinhua-north")
    assert _axe(page) == []
    # On a phone: nothing wider than the screen (the tables scroll in their own region).
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    _assert_charts_drawn(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "supervision-community-phone-zh")
    page.set_viewport_size({"width": 1280, "height": 800})

    # In English, the catalogue's names in English and the numbers written for the locale.
    page.locator("nav.trail a", has_text="东城区").click()
    page.wait_for_url(re.compile(r"unit=dongcheng"))
    expect(page.locator("h1")).to_have_text("绩效监督 · 东城区")
    page.get_by_role("button", name="English").click()  # back to the same unit and period
    page.wait_for_url(re.compile(r"/supervision\?unit=dongcheng&since=.+&until=.+$"))
    assert _period(page) == six_weeks
    assert page.locator("h1").inner_text() == "Supervision · Dongcheng District"
    table = page.locator('table.figures[data-by="unit"]').inner_text()
    assert "On-time rate" in table
    assert "Xinhua Street" in table
    assert "Overdue applications" in page.locator("main").inner_text()
    _assert_figures_are_the_services(page, demo, "dongcheng")
    _assert_charts_drawn(page)
    shot(page, "supervision-en")

    # A period that ends before it begins, swapped in: the refusal shows, as a full load would.
    page.locator("#since").fill(until.isoformat())
    page.locator("#until").fill(six_weeks_ago)
    page.get_by_role("button", name="Look up").click()
    expect(page.locator('.message[data-code="invalid-input"]')).to_be_visible()
    assert page.locator("table.figures").count() == 0

    assert violations == []
    assert errors == [  # the browser logs the refused period's answer, nothing else
        "Failed to load resource: the server responded with a status of 422 "
        "(Unprocessable Entity)"]
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_a_unit_outside_reach_a_bad_period_and_anyone_else_are_refused(demo: LiveApi) -> None:
    sessions = demo.app.state.web_sessions
    zhao = Principal(subject="supervisor-zhao", role="supervisor", department=None,
                     token_id=None, unit="dongcheng")
    cookie, _ = sessions.start(zhao)
    client = httpx.Client(base_url=demo.base_url, cookies={"cv_session": cookie})
    assert client.get("/supervision").status_code == 200
    assert client.get("/supervision?unit=heping-lane").status_code == 200
    for outside in ("xicheng", "binjiang", "riverside", "nowhere"):
        answer = client.get(f"/supervision?unit={outside}")
        assert answer.status_code == 404, outside
        assert "data-key" not in answer.text
    for bad in ("since=2026-13-01", "until=yesterday", "since=2026-11-02&until=2026-11-01",
                "until=9999-12-31", "since=0001-01-01", "until=0001-01-05"):
        answer = client.get(f"/supervision?{bad}")
        assert answer.status_code == 422, bad
        assert 'data-code="invalid-input"' in answer.text

    # An application of a unit outside his reach, or made online (the city's): 404.
    services = demo.services
    city = services.views.overdue(services.clock.now(), limit=10,
                                  units=scope(services.catalogues.current(), "binjiang"))
    online = next(e.application for e in city if e.application.unit is None)
    assert client.get(f"/supervision/applications/{online.application_id}").status_code == 404
    [riverside] = [e for e in services.views.queue("civil-affairs", limit=20)
                   if e.application.unit == "riverside"]
    url = f"/supervision/applications/{riverside.application.application_id}"
    assert client.get(url).status_code == 404
    mine = next(e.application for e in city if e.application.unit is not None)
    assert client.get(f"/supervision/applications/{mine.application_id}").status_code == 200
    assert client.get("/supervision/applications/not-an-id").status_code == 422

    for anyone in ("/supervision", f"/supervision/applications/{mine.application_id}"):
        assert httpx.get(f"{demo.base_url}{anyone}").headers["location"] == "/signin"
    resident, _ = sessions.start(Principal(subject="zhang-wei", role="resident",
                                           department=None, token_id=None))
    answer = httpx.get(f"{demo.base_url}/supervision", cookies={"cv_session": resident})
    assert (answer.status_code, answer.headers["location"]) == (303, "/signin")
