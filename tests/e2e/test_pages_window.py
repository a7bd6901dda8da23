"""一口受理 in a real browser: 王芳 at 和平里社区's window takes the code 张伟 made in his own
session, picks a service her window accepts, sees what the library will attach and what
may be missing or committed to and why, and the form filled in with each value's source —
nothing recorded and the code unspent — then accepts, as ``POST /v1/applications`` does, and
prints the receipt. A used, wrong or malformed code, a service the window may not accept,
a form without the session's CSRF token: a 4xx page, and nothing recorded."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe

from adapters.web.i18n import day
from keys.tokens import Principal
from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, demo, open_page, shot, sign_in

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser", "demo"]  # fixtures


def _violations(page: Any) -> list[str]:
    return [f"{page.url}: {v['id']} ({v['impact']}): {v['help']}"
            for v in Axe().run(page).response["violations"]]


def _clerk_client(api: LiveApi) -> tuple[httpx.Client, str]:
    clerk = Principal(subject="clerk-wang", role="clerk", department=None, token_id=None,
                      unit="heping-lane")
    cookie, session = api.app.state.web_sessions.start(clerk)
    return httpx.Client(base_url=api.base_url, cookies={"cv_session": cookie}), session.csrf


def test_a_clerk_previews_accepts_with_the_residents_code_and_prints_the_receipt(
    browser: Any, demo: LiveApi
) -> None:
    made = demo.services.applications.authorization_code("zhang-wei", "birth-registration")
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    sign_in(page, "clerk", "/window")
    # Only what 和平里社区's windows accept is offered (住房补贴 is a district's or street's).
    offered = page.locator("#service_id option").evaluate_all("os => os.map(o => o.value)")
    assert {"birth-registration", "subsistence-allowance", "elderly-card"} <= set(offered)
    assert "housing-subsidy" not in offered
    assert "employment-subsidy" not in offered
    assert "张伟" not in page.locator("main").inner_text()  # nothing of anyone before a code
    shot(page, "window-zh")

    head = demo.services.events.head()
    page.locator("#resident_id").fill("zhang-wei")
    page.locator("#code").fill(made.code.lower())  # read aloud, typed case-blind
    page.locator("#service_id").select_option("birth-registration")
    page.get_by_role("button", name="核验并预览").click()
    page.wait_for_url(re.compile(r"/window/preview$"))
    # The library's ID card and household register are attached; the marriage certificate
    # is not there, and both 容缺 and 告知承诺 may stand in for it (grade A, not key).
    for doc_type in ("id-card", "household-register"):
        row = page.locator(f'li[data-doc-type="{doc_type}"]')
        assert row.get_attribute("data-outcome") == "library"
        assert "证件复用" in row.inner_text()
    marriage = page.locator('li[data-doc-type="marriage-cert"]')
    assert marriage.get_attribute("data-outcome") == "choose"
    assert "可以容缺：非关键材料，且申请人享有容缺受理通道" in marriage.inner_text()
    assert "可以告知承诺" in marriage.inner_text()
    assert "本人承诺" in marriage.inner_text()  # the commitment's words, as it would be signed
    name = page.locator('div[data-field="name"]')
    assert page.locator("#form-name").input_value() == "张伟"
    assert "来自证照库：居民身份证" in name.inner_text()
    assert "id-card.name" in name.inner_text()
    shot(page, "window-preview-zh")
    assert _violations(page) == []
    page.set_viewport_size({"width": 360, "height": 800})  # a phone: nothing runs off the side
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.set_viewport_size({"width": 1280, "height": 800})
    # A preview records nothing: the code is still unspent (it is spent below).
    assert demo.services.events.head() == head

    marriage.locator('input[value="missing"]').check()
    page.locator("#form-spouse_name").fill("李红")
    page.get_by_role("button", name="确认受理").click()
    page.wait_for_url(re.compile(r"/window/applications/[0-9a-f-]{36}$"))
    application_id = page.url.rsplit("/", 1)[1]
    application = demo.services.applications.application(application_id)
    receipt = page.locator("article.receipt").inner_text()
    assert application.number in receipt
    assert "受理回执" in receipt
    assert "和平里社区" in receipt
    assert "clerk-wang" in receipt
    due = demo.services.applications.timing(application).due_at
    assert due is not None
    assert page.locator("dd.due").inner_text() == day(due, "zh")
    assert page.locator('tr[data-doc-type="id-card"]').get_attribute("data-source") == "library"
    assert "前补交" in page.locator('tr[data-doc-type="marriage-cert"]').inner_text()
    shot(page, "window-receipt-zh")
    assert _violations(page) == []
    page.emulate_media(media="print")  # printed: the receipt alone
    assert not page.locator("header.bar").is_visible()
    assert not page.locator("[data-print]").is_visible()
    assert page.locator("article.receipt").is_visible()
    page.emulate_media(media="screen")

    # The services agree: accepted at the window, as the API does it.
    assert (application.channel, application.unit, application.clerk) == (
        "window", "heping-lane", "clerk-wang")
    assert application.resident_id == "zhang-wei"
    taken = {m["doc_type"]: m for m in application.materials}
    assert taken["id-card"]["source"] == "library"
    assert taken["id-card"]["document_id"]
    assert taken["household-register"]["source"] == "library"
    assert taken["marriage-cert"]["source"] == "missing"
    assert taken["marriage-cert"]["due_at"]
    assert isinstance(application.form, dict)
    assert application.form["name"]["source"] == "id-card.name"  # left as filled in
    assert (application.form["spouse_name"]["value"],
            application.form["spouse_name"]["source"]) == ("李红", "clerk")

    # The same code again: refused, in words, and nothing recorded.
    head = demo.services.events.head()
    page.goto("/window")
    page.locator("#resident_id").fill("zhang-wei")
    page.locator("#code").fill(made.code)
    page.locator("#service_id").select_option("birth-registration")
    page.get_by_role("button", name="核验并预览").click()
    page.wait_for_url(re.compile(r"/window/preview$"))
    alert = page.locator('[role="alert"]')
    assert alert.get_attribute("data-code") == "authorization-code-refused"
    assert "办事码无效" in alert.inner_text()
    assert "证件复用" not in page.locator("main").inner_text()
    assert demo.services.events.head() == head
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_a_used_wrong_or_malformed_code_is_refused_and_records_nothing(demo: LiveApi) -> None:
    client, csrf = _clerk_client(demo)
    made = demo.services.applications.authorization_code("zhang-wei", "elderly-card")
    asked = {"csrf": csrf, "resident_id": "zhang-wei", "service_id": "elderly-card"}
    head = demo.services.events.head()
    for code, status in (("ABCDEFGH", 403), ("not a code!", 422), ("", 422)):
        for action in ("/window/preview", "/window/accept"):
            refused = client.post(action, data={**asked, "code": code})
            assert refused.status_code == status, (action, code, refused.text)
            assert "zhang-wei" not in refused.text.replace('value="zhang-wei"', "")
    # The right code for another resident, or for another service, tells nothing either.
    assert client.post("/window/preview", data={
        **asked, "resident_id": "li-na", "code": made.code}).status_code == 403
    assert client.post("/window/preview", data={
        **asked, "service_id": "birth-registration", "code": made.code}).status_code == 403
    assert demo.services.events.head() == head

    accepted = client.post("/window/accept", data={**asked, "code": made.code})
    assert accepted.status_code == 303
    head = demo.services.events.head()
    again = client.post("/window/accept", data={**asked, "code": made.code})
    assert again.status_code == 403
    assert "办事码无效" in again.text
    assert demo.services.events.head() == head


def test_a_service_the_window_may_not_accept_is_refused(demo: LiveApi) -> None:
    client, csrf = _clerk_client(demo)
    made = demo.services.applications.authorization_code("li-na", "housing-subsidy")
    head = demo.services.events.head()
    for action in ("/window/preview", "/window/accept"):
        refused = client.post(action, data={"csrf": csrf, "resident_id": "li-na",
                                            "service_id": "housing-subsidy", "code": made.code})
        assert refused.status_code == 403
        assert "本窗口不能受理这个事项" in refused.text
    assert demo.services.events.head() == head


def test_without_the_tracks_the_preview_says_why_a_material_may_not_be_missing(
    demo: LiveApi,
) -> None:
    """李娜 (grade B) has the commitment track for 生育登记 but not 容缺; a service whose key
    material is nowhere in the library cannot be accepted."""
    client, csrf = _clerk_client(demo)
    made = demo.services.applications.authorization_code("li-na", "birth-registration")
    shown = client.post("/window/preview", data={
        "csrf": csrf, "resident_id": "li-na", "service_id": "birth-registration",
        "code": made.code})
    assert shown.status_code == 200
    assert "不能容缺：申请人不享有容缺受理通道" in shown.text
    assert "可以告知承诺" in shown.text
    made = demo.services.applications.authorization_code("zhang-wei", "disability-subsidy")
    blocked = client.post("/window/preview", data={
        "csrf": csrf, "resident_id": "zhang-wei", "service_id": "disability-subsidy",
        "code": made.code})
    assert blocked.status_code == 200
    assert 'data-outcome="blocked"' in blocked.text
    assert "关键材料必须在受理时具备" in blocked.text
    assert re.search(r'<button type="submit" class="primary" disabled>', blocked.text)


def test_without_the_csrf_token_nothing_is_accepted(demo: LiveApi) -> None:
    client, client_csrf = _clerk_client(demo)
    made = demo.services.applications.authorization_code("zhang-wei", "elderly-card")
    head = demo.services.events.head()
    for action in ("/window/preview", "/window/accept"):
        forged = client.post(action, data={"resident_id": "zhang-wei", "code": made.code,
                                           "service_id": "elderly-card"})
        assert forged.status_code == 403
        assert "张伟" not in forged.text
    assert demo.services.events.head() == head
    # The code was not spent: with the token, the same form accepts.
    accepted = client.post("/window/accept", data={
        "csrf": client_csrf, "resident_id": "zhang-wei", "code": made.code,
        "service_id": "elderly-card"})
    assert accepted.status_code == 303


def test_someone_not_a_clerk_is_sent_to_sign_in_and_another_units_receipt_is_404(
    demo: LiveApi,
) -> None:
    resident = Principal(subject="zhang-wei", role="resident", department=None, token_id=None)
    cookie, session = demo.app.state.web_sessions.start(resident)
    client = httpx.Client(base_url=demo.base_url, cookies={"cv_session": cookie})
    assert client.get("/window").headers.get("location") == "/signin"
    moved = client.post("/window/accept", data={"csrf": session.csrf})
    assert (moved.status_code, moved.headers.get("location")) == (303, "/signin")
    assert httpx.get(f"{demo.base_url}/window").headers.get("location") == "/signin"

    # A receipt of an application another unit's window accepted does not exist here.
    other = Principal(subject="clerk-qian", role="clerk", department=None, token_id=None,
                      unit="dongcheng")
    cookie, _ = demo.app.state.web_sessions.start(other)
    made = demo.services.applications.authorization_code("zhang-wei", "elderly-card")
    accepted = demo.services.applications.apply(
        "zhang-wei", "elderly-card", unit="heping-lane", clerk="clerk-wang",
        authorization_code=made.code)
    url = f"/window/applications/{accepted.application.id}"
    elsewhere = httpx.Client(base_url=demo.base_url, cookies={"cv_session": cookie})
    assert elsewhere.get(url).status_code == 404
    mine, _ = _clerk_client(demo)
    assert mine.get(url).status_code == 200


def test_a_clerk_accepts_by_keyboard_alone_in_english(browser: Any, demo: LiveApi) -> None:
    made = demo.services.applications.authorization_code("zhang-wei", "elderly-card")
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    sign_in(page, "clerk", "/window")
    page.get_by_role("button", name="English").click()
    page.wait_for_url(re.compile(r"/window$"))
    assert page.locator("h1").inner_text() == "Window intake"
    assert _violations(page) == []

    def focus(selector: str) -> None:
        for _ in range(20):
            if page.evaluate(f"document.activeElement.matches({selector!r})"):
                return
            page.keyboard.press("Tab")
        raise AssertionError(f"{selector} is not reached with Tab")

    focus("#resident_id")
    page.keyboard.type("zhang-wei")
    page.keyboard.press("Tab")
    page.keyboard.type(made.code)
    page.keyboard.press("Tab")
    for _ in range(12):
        if page.locator("#service_id").input_value() == "elderly-card":
            break
        page.keyboard.press("ArrowDown")
    assert page.locator("#service_id").input_value() == "elderly-card"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/window/preview$"))
    assert "In the library: it will be attached" in page.locator("main").inner_text()
    name = page.locator('div[data-field="name"]').inner_text()
    assert "from the library: Resident identity card" in name
    assert _violations(page) == []
    focus("button.primary")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/window/applications/[0-9a-f-]{36}$"))
    assert "Acceptance receipt" in page.locator("article.receipt").inner_text()
    assert "reused from the library" in page.locator("article.receipt").inner_text()
    assert _violations(page) == []
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_a_form_value_emptied_or_a_choice_not_offered_is_refused_with_the_preview_kept(
    demo: LiveApi,
) -> None:
    client, csrf = _clerk_client(demo)
    made = demo.services.applications.authorization_code("zhang-wei", "birth-registration")
    asked = {"csrf": csrf, "resident_id": "zhang-wei", "service_id": "birth-registration",
             "code": made.code, "material-marriage-cert": "commitment"}
    head = demo.services.events.head()
    emptied = client.post("/window/accept", data={**asked, "form-name": ""})
    assert emptied.status_code == 422
    assert 'data-outcome="library"' in emptied.text  # the preview again, with what went wrong
    assert "form.name" in emptied.text
    assert 'value="commitment" required checked' in emptied.text  # the clerk's choice kept
    odd = client.post("/window/accept", data={**asked, "material-marriage-cert": "later"})
    assert odd.status_code == 422
    assert demo.services.events.head() == head
    # Neither spent the code: as chosen, a commitment stands in for the marriage certificate.
    accepted = client.post("/window/accept", data={**asked, "form-name": "张伟"})
    assert accepted.status_code == 303
    application = demo.services.applications.application(
        accepted.headers["location"].rsplit("/", 1)[1])
    [marriage] = [m for m in application.materials if m["doc_type"] == "marriage-cert"]
    assert marriage["source"] == "commitment"
    assert "本人承诺" in marriage["statement"]
    assert isinstance(application.form, dict)
    assert application.form["name"]["source"] == "id-card.name"  # typed as it was filled
