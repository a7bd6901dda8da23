"""我的办件 in a real browser (Debian's Chromium, the demo city): 张伟's applications with
their statuses; a 办事码 that a window accepts once; an application returned for a
supplement, supplied from the library or by upload, and withdrawn; a decided one rated once;
every action refused without the page's CSRF token (nothing recorded), and another
resident's application not found."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from adapters.samples import sample_pdf
from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, demo, open_page, shot, sign_in
from vault.errors import CodeRefused

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser", "demo"]  # fixtures


def _client(page: Any, demo: LiveApi) -> httpx.Client:
    [cookie] = [c for c in page.context.cookies() if c["name"] == "cv_session"]
    return httpx.Client(base_url=demo.base_url, cookies={"cv_session": cookie["value"]})


def _csrf(page: Any) -> str:
    return str(page.locator('input[name="csrf"]').first.get_attribute("value"))


def _returned(demo: LiveApi, *asked: str) -> str:
    """张伟 applies online for 低保; 民政局 returns it asking for ``asked``."""
    apps = demo.services.applications
    made = str(apps.apply("zhang-wei", "subsistence-allowance").application.id)
    apps.decide(made, department="civil-affairs", officer="officer-li", decision="return",
                reason="请提供近三个月的收入证明", asked_for=asked)
    demo.services.view_runner.catch_up()
    return made


def test_the_list_shows_the_residents_applications_and_makes_a_code_a_window_accepts_once(
    browser: Any, demo: LiveApi
) -> None:
    apps = demo.services.applications
    fresh = str(apps.apply("zhang-wei", "temporary-assistance").application.id)
    demo.services.view_runner.catch_up()
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    sign_in(page, "resident", "/me")
    page.goto("/me/applications")
    assert page.locator("h1").inner_text() == "我的办件"
    rows = page.locator("li.application")
    # Newest first: the one just made, accepted and on time; then the demo's 低保 — returned
    # once, supplied, approved and rated.
    assert rows.first.get_attribute("data-application-id") == fresh
    assert "已受理" in rows.first.locator(".status").inner_text()
    assert rows.first.locator(".clock-on-time").count() == 1
    [allowance] = [e for e in demo.services.views.applications("zhang-wei", limit=10)
                   if e.service_id == "subsistence-allowance"]
    row = page.locator(f'li.application[data-application-id="{allowance.application_id}"]')
    assert row.get_attribute("data-status") == "approved"
    assert "已办结（通过）" in row.inner_text()
    assert "低保申请" in row.inner_text()
    assert apps.application(allowance.application_id).number in row.inner_text()
    assert page.locator("li.application").count() == len(
        demo.services.views.applications("zhang-wei", limit=100))
    shot(page, "me-applications-zh")

    # 办事码: made in the page (htmx puts it in place), shown large with its expiry.
    page.locator("#code-service").select_option("subsistence-allowance")
    page.get_by_role("button", name="生成办事码").click()
    code = page.locator("#code .code")
    code.wait_for()
    shown = code.inner_text().strip()
    assert re.fullmatch(r"[A-Z2-9]{8}", shown)
    assert "有效期至" in page.locator("#code").inner_text()
    assert page.url.endswith("/me/applications")  # the page stayed; the code is in no URL
    shot(page, "me-code-zh")
    # The window accepts one application with it, and only one.
    accepted = apps.apply("zhang-wei", "subsistence-allowance", unit="heping-lane",
                          clerk="clerk-wang", authorization_code=shown)
    assert accepted.application.unit == "heping-lane"
    with pytest.raises(CodeRefused):
        apps.apply("zhang-wei", "subsistence-allowance", unit="heping-lane",
                   clerk="clerk-wang", authorization_code=shown)
    # Without the page's CSRF token no code is made.
    head = demo.services.events.head()
    client = _client(page, demo)
    # The list pages on from where a page ended; a place that is none is a 422 page.
    [newest, *_] = demo.services.views.applications("zhang-wei", limit=1)
    earlier = client.get(f"/me/applications?before={newest.position}").text
    assert newest.application_id not in earlier
    assert allowance.application_id in earlier
    assert client.get("/me/applications?before=x").status_code == 422
    refused = client.post("/me/applications/code", data={"service_id": "elderly-card"})
    assert refused.status_code == 403
    assert demo.services.events.head() == head

    # The demo's 低保, from the window to the rating: its whole history, in order.
    page.goto(f"/me/applications/{allowance.application_id}")
    kinds = page.locator("ol.timeline li").evaluate_all("(li) => li.map(e => e.dataset.kind)")
    assert kinds == ["accepted", "return", "supplied", "approve", "rated"]
    assert "和平里社区" in page.locator('ol.timeline li[data-kind="accepted"]').inner_text()
    assert "请提供近三个月的收入证明" in page.locator(
        'ol.timeline li[data-kind="return"]').inner_text()
    assert page.locator(".rated").get_attribute("data-score") == "5"
    assert page.locator("form.rating").count() == 0  # rated once already
    with page.expect_navigation():  # the same address: wait for the new page
        page.get_by_role("button", name="English").click()
    page.wait_for_url(re.compile(rf"/me/applications/{allowance.application_id}$"))
    assert "History" in page.locator("main").inner_text()
    assert "Civil Affairs" in page.locator('ol.timeline li[data-kind="approve"]').inner_text()
    page.goto("/me/applications")
    assert page.locator("h1").inner_text() == "My applications"
    assert page.get_by_role("button", name="Make a code").count() == 1
    shot(page, "me-applications-en")
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_a_returned_application_is_supplied_from_the_library_and_then_withdrawn(
    browser: Any, demo: LiveApi
) -> None:
    made = _returned(demo, "income-proof")
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    page.goto("/me/applications")
    row = page.locator(f'li.application[data-application-id="{made}"]')
    assert "待补正" in row.inner_text()
    assert row.locator(".clock-paused").count() == 1
    assert row.locator('[data-asked="income-proof"]').count() == 1
    row.locator("h3 a").click()
    page.wait_for_url(re.compile(rf"/me/applications/{made}$"))
    # What is asked, by whom and why, in the history; the library's income proof offered.
    returned = page.locator('ol.timeline li[data-kind="return"]')
    assert "民政局" in returned.inner_text()
    assert "收入证明" in returned.inner_text()
    assert "请提供近三个月的收入证明" in returned.inner_text()
    offered = page.locator('.asked[data-asked="income-proof"] form.from-library')
    assert offered.locator('input[name="document_id"]').count() >= 1
    shot(page, "me-application-zh")
    # Down to a phone's width, nothing runs off the side.
    page.set_viewport_size({"width": 375, "height": 812})
    for url in (f"/me/applications/{made}", "/me/applications"):
        page.goto(url)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), url
    shot(page, "me-applications-phone-zh")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"/me/applications/{made}")

    # Withdrawing without the page's CSRF token is refused, and records nothing.
    client = _client(page, demo)
    head = demo.services.events.head()
    assert client.post(f"/me/applications/{made}/withdraw", data={}).status_code == 403
    assert client.post(f"/me/applications/{made}/supplements", data={
        "doc_type": "income-proof", "document_id": offered.locator(
            'input[name="document_id"]').first.get_attribute("value")}).status_code == 403
    assert demo.services.events.head() == head
    assert demo.services.applications.application(made).status.value == "returned"

    document_id = offered.locator('input[name="document_id"]:checked').get_attribute("value")
    with page.expect_navigation():  # the same address: wait for the new page
        offered.get_by_role("button", name="提交这份").click()
    page.wait_for_url(re.compile(rf"/me/applications/{made}$"))
    supplied = demo.services.applications.application(made)
    assert supplied.status.value == "in-review"  # back to 民政局, the clock running again
    [material] = [m for m in supplied.materials if m["doc_type"] == "income-proof"]
    assert (material["source"], material["document_id"]) == ("supplement", document_id)
    assert "审核中" in page.locator(".status").first.inner_text()
    assert page.locator('ol.timeline li[data-kind="supplied"]').count() == 1
    assert page.locator(".supply").count() == 0

    # Withdraw: asked first, then done.
    page.get_by_role("link", name="撤回申请").click()
    page.wait_for_url(re.compile(rf"/me/applications/{made}/withdraw$"))
    assert supplied.number in page.locator("main").inner_text()
    assert demo.services.applications.application(made).status.value == "in-review"
    page.get_by_role("button", name="确定撤回").click()
    page.wait_for_url(re.compile(rf"/me/applications/{made}$"))
    assert demo.services.applications.application(made).status.value == "withdrawn"
    assert "已撤回" in page.locator(".status").first.inner_text()
    assert page.get_by_role("link", name="撤回申请").count() == 0
    page.context.close()


def test_an_asked_material_is_supplied_by_upload_and_an_upload_without_csrf_files_nothing(
    browser: Any, demo: LiveApi, tmp_path: Any
) -> None:
    made = _returned(demo, "household-register")
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    before = demo.services.views.library("zhang-wei", limit=200)
    client = _client(page, demo)
    pdf = sample_pdf("Household register, clearer")
    refused = client.post(f"/me/applications/{made}/supplements",
                          data={"doc_type": "household-register", "title": "户口簿"},
                          files={"file": ("hukou.pdf", pdf, "application/pdf")})
    assert refused.status_code == 403
    demo.services.view_runner.catch_up()
    assert len(demo.services.views.library("zhang-wei", limit=200)) == len(before)

    page.goto(f"/me/applications/{made}")
    upload = page.locator('.asked[data-asked="household-register"] form.upload')
    path = tmp_path / "hukou.pdf"
    path.write_bytes(pdf)
    upload.locator('input[type="file"]').set_input_files(str(path))
    with page.expect_navigation():  # the same address: wait for the new page
        upload.get_by_role("button", name="上传并提交").click()
    page.wait_for_url(re.compile(rf"/me/applications/{made}$"))
    supplied = demo.services.applications.application(made)
    assert supplied.status.value == "in-review"
    [material] = [m for m in supplied.materials if m["doc_type"] == "household-register"]
    assert material["source"] == "supplement"
    filed = demo.services.documents.document("zhang-wei", material["document_id"])
    assert filed.doc_type == "household-register"
    page.context.close()


def test_a_decided_application_is_rated_once_and_another_residents_is_not_found(
    browser: Any, demo: LiveApi
) -> None:
    apps = demo.services.applications
    made = str(apps.apply("zhang-wei", "elderly-card").application.id)
    apps.decide(made, department="civil-affairs", officer="officer-li", decision="approve",
                reason="年龄符合条件")
    demo.services.view_runner.catch_up()
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    page.goto(f"/me/applications/{made}")
    approved = page.locator('ol.timeline li[data-kind="approve"]')
    assert "年龄符合条件" in approved.inner_text()
    assert approved.locator(".result a").count() == 1  # the card issued into the library
    page.locator('form.rating input[name="score"][value="4"]').check()
    page.locator("#comment").fill("网上办，很快")
    with page.expect_navigation():  # the same address: wait for the new page
        page.get_by_role("button", name="提交评价").click()
    page.wait_for_url(re.compile(rf"/me/applications/{made}$"))
    rating = apps.application(made).rating
    assert rating is not None
    assert rating[:2] == (4, "网上办，很快")
    assert page.locator(".rated").get_attribute("data-score") == "4"
    assert page.locator("form.rating").count() == 0

    # Twice: refused, said plainly, and the first rating stands.
    client = _client(page, demo)
    csrf = _csrf(page)
    head = demo.services.events.head()
    again = client.post(f"/me/applications/{made}/rating", data={"csrf": csrf, "score": "1"})
    assert again.status_code == 409
    assert "已经评价过" in again.text
    assert demo.services.events.head() == head
    # An open one cannot be rated; a score out of range is refused.
    still_open = str(apps.apply("zhang-wei", "temporary-assistance").application.id)
    early = client.post(f"/me/applications/{still_open}/rating", data={"csrf": csrf,
                                                                      "score": "5"})
    assert early.status_code == 409
    assert client.post(f"/me/applications/{made}/rating",
                       data={"csrf": csrf, "score": "9"}).status_code == 422

    # Another resident's application does not exist for 张伟, whatever he does with it.
    [theirs, *_] = demo.services.views.applications("liu-yang", limit=5)
    url = f"/me/applications/{theirs.application_id}"
    head = demo.services.events.head()
    assert client.get(url).status_code == 404
    assert client.get(f"{url}/withdraw").status_code == 404
    assert client.post(f"{url}/withdraw", data={"csrf": csrf}).status_code == 404
    assert client.post(f"{url}/rating", data={"csrf": csrf, "score": "5"}).status_code == 404
    assert client.post(f"{url}/supplements", data={
        "csrf": csrf, "doc_type": "income-proof",
        "document_id": "00000000-0000-0000-0000-000000000000"}).status_code == 404
    assert demo.services.events.head() == head
    assert client.get("/me/applications/not-an-id").status_code == 422
    page.context.close()


def test_applying_online_takes_the_library_and_signs_a_commitment_shown_first(
    browser: Any, demo: LiveApi
) -> None:
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    page.goto("/me/applications")
    page.get_by_role("link", name="我要网上申请").click()
    page.wait_for_url(re.compile(r"/me/applications/new$"))
    page.locator("#pick-service").select_option("employment-subsidy")
    page.get_by_role("button", name="查看所需材料").click()
    page.wait_for_url(re.compile(r"service_id=employment-subsidy"))
    # The ID card is in the library (taken); the diploma is not, and may be committed to —
    # its words shown before signing; the social insurance record may come later (容缺).
    assert page.locator('fieldset[data-doc-type="id-card"]').get_attribute("data-held") == "yes"
    diploma = page.locator('fieldset[data-doc-type="diploma"]')
    assert diploma.get_attribute("data-held") == "no"
    assert "本人承诺" in diploma.locator(".statement").inner_text()
    assert page.locator("#form-name").get_attribute("placeholder") == "张伟"  # 反填
    head = demo.services.events.head()
    client = _client(page, demo)
    incomplete = client.post("/me/applications", data={
        "csrf": _csrf(page), "service_id": "employment-subsidy"})
    assert incomplete.status_code == 422  # the diploma neither in the library nor named
    assert demo.services.events.head() == head
    assert client.post("/me/applications", data={
        "service_id": "employment-subsidy", "how-diploma": "commitment",
        "how-social-insurance-record": "missing"}).status_code == 403
    assert demo.services.events.head() == head
    shot(page, "me-application-new-zh")

    diploma.locator('input[value="commitment"]').check()
    page.locator('fieldset[data-doc-type="social-insurance-record"] '
                 'input[value="missing"]').check()
    page.get_by_role("button", name="提交申请").click()
    page.wait_for_url(re.compile(r"/me/applications/[0-9a-f-]{36}$"))
    made = page.url.rsplit("/", 1)[-1]
    application = demo.services.applications.application(made)
    assert (application.resident_id, application.channel) == ("zhang-wei", "online")
    sources = {m["doc_type"]: m["source"] for m in application.materials}
    assert sources == {"id-card": "library", "diploma": "commitment",
                       "social-insurance-record": "missing"}
    assert isinstance(application.form, dict)
    assert application.form["name"]["value"] == "张伟"  # left empty: filled from the ID card
    assert "本人承诺" in page.locator('li[data-doc-type="diploma"] .statement').inner_text()
    assert "请于" in page.locator('li[data-doc-type="social-insurance-record"]').inner_text()
    page.goto("/me/applications")
    assert page.locator("li.application").first.get_attribute("data-application-id") == made
    page.context.close()


def test_every_page_of_my_applications_has_no_accessibility_violation(
    browser: Any, demo: LiveApi
) -> None:
    """axe-core on each of 我的办件's pages in the states that show the most: a code made,
    what to supply, the confirmation to withdraw, the rating form, applying online."""
    from axe_playwright_python.sync_playwright import Axe

    returned = _returned(demo, "income-proof")
    apps = demo.services.applications
    decided = str(apps.apply("zhang-wei", "elderly-card").application.id)
    apps.decide(decided, department="civil-affairs", officer="officer-li", decision="approve",
                reason="年龄符合条件")
    demo.services.view_runner.catch_up()
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    found: list[str] = []

    def check() -> None:
        for v in Axe().run(page).response["violations"]:
            found.append(f"{page.url}: {v['id']} ({v['impact']}): {v['help']} — "
                         + "; ".join(n["target"][0] for n in v["nodes"][:3]))

    for language in ("zh", "en"):
        page.goto("/me/applications")
        if language == "en":
            with page.expect_navigation():  # the same address: wait for the new page
                page.get_by_role("button", name="English").click()
            page.wait_for_url(re.compile(r"/me/applications$"))
        page.locator(".code-form button").click()
        page.locator("#code .code").wait_for()
        check()
        for url in (f"/me/applications/{returned}", f"/me/applications/{returned}/withdraw",
                    f"/me/applications/{decided}",
                    "/me/applications/new?service_id=employment-subsidy"):
            page.goto(url)
            check()
    assert found == []
    page.context.close()


def test_a_material_accepted_as_missing_is_supplied_before_anyone_asks(
    browser: Any, demo: LiveApi, tmp_path: Any
) -> None:
    """容缺: the page offers what the application was accepted without while it is open;
    supplying it changes nothing else (status, clock, queue)."""
    apps = demo.services.applications
    made = str(apps.apply("zhang-wei", "employment-subsidy", commitments=("diploma",),
                          missing=("social-insurance-record",)).application.id)
    demo.services.view_runner.catch_up()
    before = apps.application(made)
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    page.goto(f"/me/applications/{made}")
    assert page.locator("#supply-heading").inner_text() == "补交容缺材料"
    upload = page.locator('.asked[data-asked="social-insurance-record"] form.upload')
    path = tmp_path / "shebao.pdf"
    path.write_bytes(sample_pdf("Social insurance record"))
    upload.locator('input[type="file"]').set_input_files(str(path))
    with page.expect_navigation():  # the same address: wait for the new page
        upload.get_by_role("button", name="上传并提交").click()
    page.wait_for_url(re.compile(rf"/me/applications/{made}$"))
    after = apps.application(made)
    assert (after.status, after.due_at, after.waiting_on) == (
        before.status, before.due_at, before.waiting_on)
    [material] = [m for m in after.materials if m["doc_type"] == "social-insurance-record"]
    assert material["source"] == "supplement"
    assert page.locator("section.supply").count() == 0  # nothing left to bring
    page.context.close()


def test_a_commitment_is_signed_in_place_of_a_missing_material_its_words_shown_first(
    browser: Any, demo: LiveApi
) -> None:
    """告知承诺 after acceptance: beside a material the application was accepted without
    (容缺), where the service and the tracks allow a commitment, the page shows the
    commitment's words and a button to sign it; refused without the page's CSRF token and
    for another resident's application (nothing recorded)."""
    apps = demo.services.applications
    made = str(apps.apply("zhang-wei", "employment-subsidy",
                          missing=("diploma", "social-insurance-record")).application.id)
    demo.services.view_runner.catch_up()
    before = apps.application(made)
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    page.goto(f"/me/applications/{made}")
    diploma = page.locator('.asked[data-asked="diploma"]')
    commit = diploma.locator("form.commit")
    assert "本人承诺" in commit.locator(".statement").inner_text()
    assert "毕业证书" in commit.locator(".statement").inner_text()
    assert commit.get_by_role("button", name="签署承诺").count() == 1
    # The service lets no commitment replace the social insurance record: no button there.
    assert page.locator('.asked[data-asked="social-insurance-record"] form.commit').count() == 0
    shot(page, "me-application-commitment-zh")

    client = _client(page, demo)
    head = demo.services.events.head()
    url = f"/me/applications/{made}/commitments"
    assert client.post(url, data={"doc_type": "diploma"}).status_code == 403
    assert client.post(url, data={"doc_type": "diploma", "csrf": "forged"}).status_code == 403
    refused = client.post(url, data={"csrf": _csrf(page),
                                     "doc_type": "social-insurance-record"})
    assert refused.status_code == 422
    assert "cannot be replaced by a commitment" in refused.text
    [theirs, *_] = demo.services.views.applications("liu-yang", limit=5)
    assert client.post(f"/me/applications/{theirs.application_id}/commitments", data={
        "csrf": _csrf(page), "doc_type": "diploma"}).status_code == 404
    assert demo.services.events.head() == head
    assert apps.application(made).still_missing == ("diploma", "social-insurance-record")

    with page.expect_navigation():  # back to the same address: wait for the new page
        commit.get_by_role("button", name="签署承诺").click()
    page.wait_for_url(re.compile(rf"/me/applications/{made}$"))
    after = apps.application(made)
    assert (after.status, after.due_at, after.waiting_on) == (
        before.status, before.due_at, before.waiting_on)
    [material] = [m for m in after.materials if m["doc_type"] == "diploma"]
    assert (material["source"], material["trust_level"]) == ("commitment", "D")
    assert "毕业证书" in page.locator('ol.timeline li[data-kind="committed"]').inner_text()
    assert "本人承诺" in page.locator('li[data-doc-type="diploma"] .statement').inner_text()
    assert page.locator('.asked[data-asked="diploma"]').count() == 0  # nothing left to sign
    assert page.locator('.asked[data-asked="social-insurance-record"]').count() == 1
    assert client.post(url, data={"csrf": _csrf(page), "doc_type": "diploma"}
                       ).status_code == 422  # signed already: not missing any more
    page.context.close()
