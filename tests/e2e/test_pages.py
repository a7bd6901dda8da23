"""The pages in a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``;
``.ci/run`` installs it) against a live loopback server with the demo city. Every request a
page makes stays on the server's origin; cookies are HttpOnly, Secure, SameSite; a form
without its CSRF token is refused; signing out ends the session on the server; the pages
read in Chinese and, toggled, in English; screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, demo, open_page, shot, sign_in

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser", "demo"]  # fixtures


def test_a_resident_signs_in_sees_the_library_in_both_languages_and_signs_out(
    browser: Any, demo: LiveApi
) -> None:
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    page.goto("/")
    assert page.url.endswith("/signin")
    shot(page, "signin-zh")
    # Keyboard only: the persona's button is reached with Tab and pressed with Enter.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.role") == "resident":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/me$"))
    assert page.locator("h1").inner_text() == "我的证照"
    cards = page.locator("li.card")
    assert cards.count() >= 3
    assert "居民身份证" in page.locator("main").inner_text()
    assert page.locator("li.card .trust-A").count() >= 1  # issued by 公安局
    shot(page, "me-zh")

    [cookie] = [c for c in page.context.cookies() if c["name"] == "cv_session"]
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Lax")
    assert "cv_session" not in page.evaluate("document.cookie")  # out of scripts' reach

    with page.expect_navigation():  # the same address: wait for the new page
        page.get_by_role("button", name="English").click()
    page.wait_for_url(re.compile(r"/me$"))
    assert page.locator("h1").inner_text() == "My documents"
    assert "Trust level" in page.locator("main").inner_text()
    shot(page, "me-en")

    # A form posted without the session's CSRF token is refused, and changes nothing.
    client = httpx.Client(base_url=demo.base_url, cookies={"cv_session": cookie["value"]})
    assert client.post("/signout", data={}).status_code == 403
    assert client.get("/me").status_code == 200

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/signin$"))
    # The session is over on the server, whoever kept the cookie.
    assert client.get("/me").headers.get("location") == "/signin"
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_without_the_demo_there_is_no_one_to_pick(
    browser: Any, live_api_factory: Callable[..., LiveApi]
) -> None:
    api = live_api_factory()
    page = open_page(browser, api, [])
    page.goto("/signin")
    assert page.locator("[data-role]").count() == 0
    assert "统一身份认证" in page.locator("main").inner_text()
    forged = httpx.post(f"{api.base_url}/signin/persona", data={"persona": "zhang-wei"})
    assert forged.status_code == 403
    page.context.close()


def test_a_reviewer_works_the_queue_reads_a_material_and_decides(
    browser: Any, demo: LiveApi
) -> None:
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    page.goto("/signin")
    page.locator('[data-role="officer"]').click()
    page.wait_for_url(re.compile(r"/work$"))
    rows = page.locator("table.queue tbody tr")
    assert rows.count() >= 3
    # Soonest due first: the first is overdue in the demo city (red), and the order holds.
    assert page.locator("table.queue tbody tr").first.locator(".clock-overdue").count() == 1
    shot(page, "work-zh")

    first = rows.first
    application_id = first.get_attribute("data-application-id")
    first.locator("a").click()
    page.wait_for_url(re.compile(r"/work/applications/"))
    shot(page, "work-application-zh")
    link = page.locator('li[data-doc-type="id-card"] a')
    shown = page.request.get(link.get_attribute("href"))
    assert shown.status == 200
    assert shown.headers["content-type"] == "image/png"
    # The read is a recorded fetch under the application's consent: the resident sees it.
    application = demo.services.applications.application(application_id)
    demo.services.view_runner.catch_up()
    log = demo.services.views.access_log(application.resident_id, limit=5)
    assert log[0].access_id == shown.headers["x-access-id"]
    assert log[0].consent_id in application.consent_ids

    page.locator('input[name="decision"][value="approve"]').check()
    page.locator("#reason").fill("材料齐全，符合条件")
    with page.expect_navigation():  # the same address: wait for the new page
        page.get_by_role("button", name="提交").click()
    page.wait_for_url(re.compile(rf"/work/applications/{application_id}$"))
    decided = demo.services.applications.application(application_id)
    assert decided.steps[decided.current_step].approved_by or decided.status.value == "approved"
    assert page.locator("form.decision").count() == 0  # nothing left for 民政局 to decide
    # A decision without the page's CSRF token is refused.
    [cookie] = [c for c in page.context.cookies() if c["name"] == "cv_session"]
    forged = httpx.post(f"{demo.base_url}/work/applications/{application_id}/decision",
                        data={"decision": "reject", "reason": "x"},
                        cookies={"cv_session": cookie["value"]})
    assert forged.status_code == 403
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_a_department_that_neither_reviews_nor_owns_an_application_cannot_see_it(
    demo: LiveApi,
) -> None:
    """To 住建局 a 民政局 application does not exist, nor its materials, nor its decision."""
    from keys.tokens import Principal

    housing = Principal(subject="officer-zhou", role="officer", department="housing",
                        token_id=None)
    cookie, session = demo.app.state.web_sessions.start(housing)
    client = httpx.Client(base_url=demo.base_url, cookies={"cv_session": cookie})
    [entry, *_] = demo.services.views.queue("civil-affairs", limit=1)
    url = f"/work/applications/{entry.application.application_id}"
    head = demo.services.events.head()
    assert client.get(url).status_code == 404
    assert client.get(f"{url}/materials/id-card").status_code == 404
    refused = client.post(f"{url}/decision", data={
        "csrf": session.csrf, "decision": "approve", "reason": "x"})
    assert refused.status_code == 404
    assert demo.services.events.head() == head  # nothing recorded, not even a fetch
    assert "data-application-id" not in client.get("/work").text  # its own queue is empty


def test_a_reviewer_fetches_for_a_purpose_sees_the_fast_track_and_why_a_fetch_is_refused(
    browser: Any, demo: LiveApi
) -> None:
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    sign_in(page, "officer", "/work")
    page.get_by_role("link", name="调阅材料").click()
    page.wait_for_url(re.compile(r"/work/fetch$"))
    held = demo.services.views.consents_held("civil-affairs", demo.services.clock.now())
    assert page.locator("tr[data-consent-id]").count() == len(held) > 0
    consent = held[0]
    page.locator(f'tr[data-consent-id="{consent.consent_id}"] a').click()
    page.wait_for_url(re.compile(r"/work/fetch\?resident="))
    shot(page, "work-fetch-zh")
    fetchable = page.locator("ul.materials li[data-document-id]")
    assert fetchable.count() >= 1
    # The fast-track panel: each track applies or not, told by its requirement.
    tracks = page.locator("section.tracks li[data-track]")
    assert tracks.count() >= 1
    assert not re.search(r"has [A-D]\b", page.locator("section.tracks").inner_text())
    document_id = fetchable.first.get_attribute("data-document-id")
    shown = page.request.get(fetchable.first.locator("a").get_attribute("href"))
    assert shown.status == 200
    demo.services.view_runner.catch_up()
    [entry, *_] = demo.services.views.access_log(consent.resident_id, limit=1)
    assert (entry.access_id, entry.document_id) == (shown.headers["x-access-id"], document_id)
    # A fetch for a purpose the consent does not name: refused with its reasons, recorded.
    other = next(s for s in ("housing-subsidy", "elderly-card", "birth-registration")
                 if s != consent.purpose)
    head = demo.services.events.head()
    page.goto(f"/work/fetch/{consent.resident_id}/{document_id}?purpose={other}")
    assert page.locator("h1").inner_text() == "调阅被拒绝"
    assert page.locator("ul.reasons li[data-reason]").count() >= 1
    assert demo.services.events.head() > head  # the refused attempt is on the record
    shot(page, "work-fetch-denied-zh")
    # Bad input is a 4xx page and records nothing.
    head = demo.services.events.head()
    assert page.goto("/work/fetch?resident=%00bad&purpose=x").status == 422
    assert page.goto(f"/work/fetch/{consent.resident_id}/not-a-uuid?purpose="
                     f"{consent.purpose}").status == 422
    assert demo.services.events.head() == head
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_someone_not_signed_in_can_choose_a_language_on_a_refusal_page(demo: LiveApi) -> None:
    refused = httpx.post(f"{demo.base_url}/signin/persona", data={"persona": "zhang-wei"})
    assert refused.status_code == 403
    [token] = re.findall(r'name="csrf" value="([^"]+)"', refused.text)[:1]
    assert refused.cookies.get("cv_signin") == token
    # (Secure cookies: a browser sends them to 127.0.0.1, httpx only when told.)
    chosen = httpx.post(f"{demo.base_url}/language", cookies={"cv_signin": token},
                        data={"csrf": token, "language": "en", "back": "/signin"})
    assert chosen.status_code == 303
    assert chosen.cookies.get("cv_lang") == "en"
    # Without the token, or with another, the choice is refused.
    assert httpx.post(f"{demo.base_url}/language",
                      data={"csrf": "forged", "language": "en"}).status_code == 403


def _tab_to(page: Any, condition: str, most: int = 40) -> None:
    """Press Tab until the focused element meets ``condition`` (a JS expression on `e`)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate(f"(e => {condition})(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached {condition}")


def test_a_reviewer_returns_an_application_by_keyboard_alone(
    browser: Any, demo: LiveApi
) -> None:
    page = open_page(browser, demo, [])
    sign_in(page, "officer", "/work")
    apps = demo.services.applications
    waiting = [apps.application(e.application.application_id)
               for e in demo.services.views.queue("civil-affairs", limit=50)]
    deciding = next(str(a.id) for a in waiting if a.at_current_step("civil-affairs")
                    and "income-proof" in {m["doc_type"] for m in a.materials})
    page.goto(f"/work/applications/{deciding}")
    _tab_to(page, "e.name === 'decision'")
    page.keyboard.press("ArrowDown")  # from 通过 to 退回补正
    _tab_to(page, "e.name === 'material-income-proof'")
    page.keyboard.press("Space")
    _tab_to(page, "e.id === 'reason'")
    page.keyboard.type("请补充近三个月的收入证明")
    _tab_to(page, "e.type === 'submit' && e.closest('form.decision') !== null")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/work/applications/{deciding}")
    returned = demo.services.applications.application(deciding)
    assert returned.status.value == "returned"
    assert returned.asked_for == ("income-proof",)
    page.context.close()
