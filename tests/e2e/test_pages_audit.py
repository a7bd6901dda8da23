"""The auditor's pages (审计) in Chromium against the demo city: searching the access log
by department finds the accesses the services recorded, with their charts drawn under the
pages' CSP; a bad filter is a 4xx page; the ledger verifies; re-adjudication finds every
decision equal; the evidence bundle downloaded is the one ``civicvault audit export``
writes; a form without the session's CSRF token records nothing; and no one but an
auditor sees any of it."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from adapters.web.pages import PERSONAS
from keys.tokens import Principal
from projections.evidence import export_bundle, verify_bundle
from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, demo, open_page, shot, sign_in
from vault.document import Document
from vault.errors import AccessDenied
from vault.inputs import ConsentRequest
from vault.workdays import CHINA

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser", "demo"]  # fixtures

OFFICER = "officer-audit-e2e"
"""The officer of this test's own fetches, so that a search can single them out."""


def _id_card(api: LiveApi, resident_id: str) -> Document:
    services = api.services
    documents = map(services.documents.find,
                    reversed(services.residents.resident(resident_id).document_ids))
    return next(d for d in documents if d.doc_type == "id-card" and d.is_active)


def _fetch_allowed_and_denied(api: LiveApi) -> tuple[str, str]:
    """民政局 fetches 张伟's ID card under a consent he grants now (allowed); 住建局 tries
    to without one (denied). Both are recorded; returns their access ids."""
    services = api.services
    card = _id_card(api, "zhang-wei")
    services.consents.grant("zhang-wei", ConsentRequest(
        "civil-affairs", ("id-card",), "subsistence-allowance",
        valid_until=services.clock.now() + timedelta(days=30)))
    fetched = services.fetches.fetch(
        officer=OFFICER, department="civil-affairs", resident_id="zhang-wei",
        document_id=card.id, purpose="subsistence-allowance")
    b"".join(fetched.content)
    with pytest.raises(AccessDenied) as denied:
        services.fetches.fetch(
            officer=OFFICER, department="housing", resident_id="zhang-wei",
            document_id=card.id, purpose="housing-subsidy")
    services.view_runner.catch_up()
    return str(fetched.access.id), str(denied.value.access_id)


def _watch(page: Any) -> list[str]:
    """Every console error and CSP violation the page meets, as they happen."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))")
    return problems


def _session(api: LiveApi, role: str) -> tuple[httpx.Client, str]:
    persona = next(p for p in PERSONAS if p.role == role)
    cookie, session = api.app.state.web_sessions.start(persona.principal())
    return httpx.Client(base_url=api.base_url, cookies={"cv_session": cookie}), session.csrf


def _shown_ids(page: Any) -> list[str]:
    return page.locator("table.audit-accesses tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.accessId)")


def test_an_auditor_searches_by_department_and_sees_the_accesses_and_their_charts(
    browser: Any, demo: LiveApi
) -> None:
    allowed, denied = _fetch_allowed_and_denied(demo)
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    problems = _watch(page)
    sign_in(page, "auditor", "/audit")
    assert page.locator("h1").inner_text() == "审计"
    page.wait_for_function("document.querySelectorAll('[data-chart] canvas').length >= 4")
    shot(page, "audit-zh")
    # Each department's accesses per day add up to its total; every chart hovered draws
    # its tooltip on the canvas, so the CSP refuses nothing (checked at the end).
    def numbers(chart: str, name: str) -> Any:
        return json.loads(page.locator(f'[data-chart="{chart}"]').get_attribute(f"data-{name}"))

    totals = [a + d for a, d in zip(numbers("departments", "allowed"),
                                    numbers("departments", "denied"), strict=True)]
    assert [sum(days) for days in numbers("department-days", "series")] == totals
    for chart in page.locator("[data-chart]").all():
        chart.hover()

    page.select_option("#department", "housing")
    page.get_by_role("button", name="搜索", exact=True).click()
    page.wait_for_url(re.compile(r"/audit\?.*department=housing"))
    views = demo.services.views
    expected = [e.access_id for e in views.accesses(limit=50, department="housing")]
    assert _shown_ids(page) == expected
    assert denied in expected
    assert allowed not in expected
    page.wait_for_function("document.querySelectorAll('[data-chart] canvas').length >= 3")

    # The test's own fetches, singled out by officer: each with its outcome and reason.
    for department, access_id, outcome in (("housing", denied, "denied"),
                                           ("civil-affairs", allowed, "allowed")):
        page.goto("/audit?" + urlencode({"department": department, "officer": OFFICER}))
        assert _shown_ids(page) == [access_id]
        row = page.locator(f'tr[data-access-id="{access_id}"]')
        assert row.get_attribute("data-outcome") == outcome
        assert ("no-consent" in row.inner_text()) == (outcome == "denied")
    page.goto("/audit?" + urlencode({"officer": OFFICER, "outcome": "denied"}))
    assert _shown_ids(page) == [denied]
    today = demo.services.clock.now().astimezone(CHINA).date().isoformat()
    page.goto("/audit?" + urlencode({"officer": OFFICER, "since": today, "until": today}))
    assert _shown_ids(page) == [allowed, denied]
    assert page.locator("[data-chart] canvas").count() >= 2  # drawn on every page load

    # A phone's width: the page reflows, only the table scrolls sideways in its own box.
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto("/audit")
    page.wait_for_function("document.querySelectorAll('[data-chart] canvas').length >= 3")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "audit-phone-zh")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_role("button", name="English").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Audit"
    assert "Accesses per day: allowed and denied" in page.locator("main").inner_text()
    page.wait_for_function("document.querySelectorAll('[data-chart] canvas').length >= 2")
    shot(page, "audit-en")
    assert problems == []
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


@pytest.mark.parametrize("query", [
    {"resident_id": "张 伟"}, {"department": "no-such-bureau"}, {"outcome": "maybe"},
    {"since": "2026-13-01"}, {"since": "2026-12-02", "until": "2026-12-01"},
    {"cursor": "-1"}, {"purpose": "not-a-service"},
])
def test_a_bad_filter_is_a_page_that_says_what_is_wrong(
    demo: LiveApi, query: dict[str, str]
) -> None:
    client, _ = _session(demo, "auditor")
    answer = client.get("/audit", params=query)
    assert answer.status_code == 422
    assert 'data-problem="invalid-input"' in answer.text
    assert "data-access-id" not in answer.text


def test_the_ledger_verifies_and_every_decision_made_again_is_equal(
    browser: Any, demo: LiveApi
) -> None:
    _fetch_allowed_and_denied(demo)
    page = open_page(browser, demo, [])
    problems = _watch(page)
    sign_in(page, "auditor", "/audit")
    page.get_by_role("link", name="账本", exact=True).click()
    page.wait_for_url(re.compile(r"/audit/ledger$"))
    ledger = demo.services.ledger
    checkpoint = ledger.latest_checkpoint()
    assert checkpoint is not None
    assert page.locator("[data-tree-size]").get_attribute("data-tree-size") == str(
        checkpoint.tree_size)
    assert checkpoint.root_hash.hex() in page.locator("main").inner_text()
    page.get_by_role("button", name="验证", exact=True).click()
    verdict = page.locator("#verdict [data-intact]")
    verdict.wait_for()
    assert verdict.get_attribute("data-intact") == "true"
    assert "完好" in verdict.inner_text()
    assert page.url.endswith("/audit/ledger")  # drawn in place (htmx)
    shot(page, "audit-ledger-zh")

    page.get_by_role("link", name="重新裁决", exact=True).click()
    page.wait_for_url(re.compile(r"/audit/readjudicate$"))
    head = demo.services.events.head()
    page.get_by_role("button", name="重新裁决", exact=True).click()
    report = page.locator("#report [data-equal]")
    report.wait_for(timeout=60_000)
    assert report.get_attribute("data-equal") == "true"
    assert report.get_attribute("data-mismatches") == "0"
    expected = demo.services.audit.readjudicate()
    assert report.get_attribute("data-checked") == str(expected.checked)
    assert "全部一致" in report.inner_text()
    assert demo.services.events.head() == head
    shot(page, "audit-readjudicate-zh")
    assert problems == []

    # Without the session's CSRF token: refused, and nothing recorded.
    client, _ = _session(demo, "auditor")
    head = demo.services.events.head()
    assert client.post("/audit/readjudicate", data={}).status_code == 403
    assert client.post("/audit/evidence", data={"resident_id": "zhang-wei"}).status_code == 403
    assert demo.services.events.head() == head
    page.context.close()


def test_the_evidence_downloaded_is_the_bundle_the_cli_exports(
    browser: Any, demo: LiveApi
) -> None:
    allowed, _ = _fetch_allowed_and_denied(demo)
    services = demo.services
    page = open_page(browser, demo, [])
    sign_in(page, "auditor", "/audit")
    page.fill("#resident_id", "zhang-wei")
    page.get_by_role("button", name="搜索", exact=True).click()
    page.wait_for_url(re.compile(r"resident_id=zhang-wei"))
    with page.expect_download() as download:
        page.locator('button[data-export="search"]').click()
    downloaded = json.loads(Path(download.value.path()).read_bytes())
    key = services.signing.current("checkpoints")
    exported = export_bundle(
        services.views, services.ledger, resident_id="zhang-wei", since=None, until=None,
        sign=lambda message: (key.kid, key.private_key.sign(message)),
        now=services.clock.now(),
    ).bundle
    assert downloaded["entries"]
    mine = {k: v for k, v in downloaded.items() if k not in ("exported_at", "signature")}
    assert mine == {k: v for k, v in exported.items() if k not in ("exported_at", "signature")}
    public_keys = services.signing.public_keys("checkpoints")
    assert verify_bundle(downloaded, public_keys).intact

    # One entry's bundle: that access alone, proven and signed.
    position = page.locator(f'tr[data-access-id="{allowed}"]').get_attribute("data-event")
    with page.expect_download() as download:
        page.locator(f'tr[data-access-id="{allowed}"] button').click()
    one = json.loads(Path(download.value.path()).read_bytes())
    assert [e["access"]["access_id"] for e in one["entries"]] == [allowed]
    assert [e["event"] for e in one["entries"]] == [int(position or 0)]
    assert verify_bundle(one, public_keys).intact

    client, csrf = _session(demo, "auditor")
    assert client.post("/audit/evidence", data={"csrf": csrf, "event": "999999999"}
                       ).status_code == 404
    assert client.post("/audit/evidence", data={"csrf": csrf}).status_code == 422
    page.context.close()


def test_a_resident_is_replayed_as_they_stood(browser: Any, demo: LiveApi) -> None:
    services = demo.services
    page = open_page(browser, demo, [])
    sign_in(page, "auditor", "/audit")
    page.get_by_role("link", name="回放", exact=True).click()
    page.wait_for_url(re.compile(r"/audit/replay$"))
    moment = services.clock.now().astimezone(CHINA).replace(second=0, microsecond=0)
    page.fill("#resident_id", "zhang-wei")
    page.fill("#at", moment.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="回放", exact=True).click()
    page.wait_for_url(re.compile(r"/audit/replay\?"))
    replay = services.audit.replay_resident("zhang-wei", moment)
    shown = page.locator("table.audit-replay-documents tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.documentId)")
    assert shown == [str(d.id) for d in replay.documents]
    assert page.locator("[data-grade]").get_attribute("data-grade") == "A"
    assert page.locator("table.audit-replay-consents tbody tr").count() == len(replay.consents)
    shot(page, "audit-replay-zh")
    client, _ = _session(demo, "auditor")
    assert client.get("/audit/replay", params={
        "resident_id": "nobody-here", "at": "2026-01-01T09:00"}).status_code == 404
    assert client.get("/audit/replay", params={
        "resident_id": "zhang-wei", "at": "yesterday"}).status_code == 422
    page.context.close()


def test_only_an_auditor_sees_the_audit_pages(demo: LiveApi) -> None:
    _fetch_allowed_and_denied(demo)
    anonymous = httpx.Client(base_url=demo.base_url)
    resident, csrf = _session(demo, "resident")
    officer = httpx.Client(base_url=demo.base_url, cookies={
        "cv_session": demo.app.state.web_sessions.start(Principal(
            subject="officer-li", role="officer", department="civil-affairs",
            token_id=None))[0]})
    head = demo.services.events.head()
    for client in (anonymous, resident, officer):
        for path in ("/audit", "/audit?department=housing", "/audit/ledger",
                     "/audit/ledger/verify", "/audit/readjudicate",
                     "/audit/replay?resident_id=zhang-wei&at=2026-12-01T09:00"):
            answer = client.get(path)
            assert (answer.status_code, answer.headers.get("location")) == (303, "/signin")
            assert "data-access-id" not in answer.text
        for path in ("/audit/readjudicate", "/audit/evidence"):
            answer = client.post(path, data={"csrf": csrf, "resident_id": "zhang-wei"})
            assert (answer.status_code, answer.headers.get("location")) == (303, "/signin")
            assert "entries" not in answer.text
    assert demo.services.events.head() == head


def test_every_audit_page_with_its_results_has_no_accessibility_violation(
    browser: Any, demo: LiveApi
) -> None:
    """Beyond the tab the header lists (checked in test_pages_accessibility): the ledger
    with a verdict, a replay, a re-adjudication's report, a search's results."""
    from axe_playwright_python.sync_playwright import Axe

    _fetch_allowed_and_denied(demo)
    page = open_page(browser, demo, [])
    sign_in(page, "auditor", "/audit")
    found: list[str] = []
    moment = demo.services.clock.now().astimezone(CHINA).strftime("%Y-%m-%dT%H:%M")
    for path in ("/audit?resident_id=zhang-wei", "/audit/ledger/verify",
                 f"/audit/replay?resident_id=zhang-wei&at={moment}", "/audit/readjudicate"):
        page.goto(path)
        if path == "/audit/readjudicate":
            page.get_by_role("button", name="重新裁决", exact=True).click()
            page.locator("#report [data-equal]").wait_for(timeout=60_000)
        results = Axe().run(page)
        found += [f"{path}: {v['id']} ({v['impact']}): {v['help']}"
                  for v in results.response["violations"]]
    assert found == []
    page.context.close()


def test_a_report_that_differs_lists_each_decision_that_does_not_match() -> None:
    """The demo city's decisions are all borne out; a report with one that is not shows it
    (rendered as the page renders the service's report)."""
    from datetime import UTC, datetime
    from uuid import uuid4

    from adapters.web.pages import _environment
    from vault.services.audit import Mismatch, Readjudication

    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    differs = Mismatch(
        event=42, access_id=uuid4(), at=at, resident_id="zhang-wei", officer="officer-li",
        department="civil-affairs", document_id=uuid4(), purpose="subsistence-allowance",
        policy_version="f" * 64, recorded_allowed=True, decided_allowed=False,
        recorded_reasons=(), decided_reasons=("no-consent",))
    report = Readjudication(checked=7, events=90, mismatches=[differs])
    page = _environment("zh").get_template("audit_report.html").render(
        report=report, when=lambda moment: moment.isoformat(), language="zh")
    assert 'data-equal="false"' in page
    assert 'data-mismatches="1"' in page
    assert '<tr data-event="42">' in page
    assert "no-consent" in page
    assert "全部一致" not in page
