"""A resident's own pages in a real browser (Debian's Chromium, driven by Playwright)
against the demo city: 我的证照 — upload a document, withdraw it; 我的授权 — grant a consent
after reading it in plain words, revoke it, in Chinese and English; 注销 — refused without
the right word, done with it. Every change is checked in the services the API uses too, and
a form posted without its CSRF token is refused with nothing recorded."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, demo, open_page, shot, sign_in
from vault.errors import ResidentErased
from vault.workdays import CHINA

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser", "demo"]  # fixtures
RESIDENT = "zhang-wei"
OTHER = "li-na"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


def _violations(page: Any) -> list[str]:
    """What axe-core finds wrong with the page (WCAG 2.x A and AA, best practices)."""
    found = Axe().run(page).response["violations"]
    return [f"{page.url}: {v['id']} ({v['impact']}): {v['help']}" for v in found]


def _multipart(parts: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """A multipart body with its parts in the order given (a form's, or a forger's)."""
    boundary = "cv-test-boundary"
    body = b""
    for name, value in parts:
        filename = '; filename="x.png"\r\nContent-Type: image/png' if name == "file" else ""
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
                 f"{filename}\r\n\r\n").encode() + value + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", body + f"--{boundary}--\r\n".encode()


def _session_client(page: Any, api: LiveApi) -> httpx.Client:
    [cookie] = [c for c in page.context.cookies() if c["name"] == "cv_session"]
    return httpx.Client(base_url=api.base_url, cookies={"cv_session": cookie["value"]})


def _titles(api: LiveApi) -> list[str | None]:
    return [d.title for d in api.services.views.library(RESIDENT, limit=500)]


def test_a_resident_uploads_a_document_and_withdraws_it(browser: Any, demo: LiveApi) -> None:
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    sign_in(page, "resident", "/me")
    cards = page.locator("li.card")
    before = cards.count()

    page.select_option("#doc_type", "diploma")
    page.fill("#title", "北京大学毕业证书")
    page.set_input_files("#file", {"name": "diploma.png", "mimeType": "image/png",
                                   "buffer": _png()})
    page.get_by_role("button", name="上传", exact=True).click()
    expect(cards).to_have_count(before + 1)
    card = page.locator("li.card", has_text="北京大学毕业证书")
    assert "毕业证书" in card.locator("h2").inner_text()
    assert card.locator(".trust-C").count() == 1
    assert "北京大学毕业证书" in _titles(demo)
    shot(page, "me-upload-zh")

    assert _violations(page) == []
    card.get_by_role("link", name="撤回").click()
    page.wait_for_url(re.compile(r"/me/documents/[^/]+/withdraw$"))
    assert _violations(page) == []
    assert "北京大学毕业证书" in page.locator("main").inner_text()
    shot(page, "me-withdraw-zh")
    page.get_by_role("button", name="确认撤回").click()
    page.wait_for_url(re.compile(r"/me$"))
    assert page.locator("li.card", has_text="北京大学毕业证书").count() == 0
    assert cards.count() == before
    assert "北京大学毕业证书" not in _titles(demo)

    # Without the page's CSRF token (or with it after the file), an upload is refused
    # before anything is filed.
    client = _session_client(page, demo)
    head = demo.services.events.head()
    files = {"file": ("x.png", _png(), "image/png")}
    bare = client.post("/me/documents", data={"doc_type": "diploma", "title": "伪造"},
                       files=files)
    assert bare.status_code == 403
    assert demo.services.events.head() == head
    assert "伪造" not in _titles(demo)
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    late = _multipart([("doc_type", b"diploma"), ("title", "迟到".encode()),
                       ("file", _png()), ("csrf", (csrf or "").encode())])
    assert client.post("/me/documents", content=late[1],
                       headers={"content-type": late[0]}).status_code == 403
    # The file is not what it says: refused with the reason above the form, nothing filed.
    fake = _multipart([("csrf", (csrf or "").encode()), ("doc_type", b"diploma"),
                       ("title", "假图片".encode()), ("file", b"not a picture")])
    refused = client.post("/me/documents", content=fake[1], headers={"content-type": fake[0]})
    assert refused.status_code == 415
    assert "上传证照" in refused.text
    [mine] = demo.services.views.library(RESIDENT, limit=1)
    assert client.post(f"/me/documents/{mine.document_id}/withdraw", data={}).status_code == 403
    assert demo.services.events.head() == head
    assert "迟到" not in _titles(demo)
    assert "假图片" not in _titles(demo)

    # Another resident's document: not found, as the API answers, and still there.
    [theirs] = demo.services.views.library(OTHER, limit=1)
    assert client.get(f"/me/documents/{theirs.document_id}/withdraw").status_code == 404
    taken = client.post(f"/me/documents/{theirs.document_id}/withdraw", data={"csrf": csrf})
    assert taken.status_code == 404
    assert demo.services.events.head() == head
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_a_resident_grants_a_consent_after_its_preview_and_revokes_it(
    browser: Any, demo: LiveApi
) -> None:
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    sign_in(page, "resident", "/me")
    page.get_by_role("link", name="我的授权").click()
    page.wait_for_url(re.compile(r"/me/consents(#.*)?$"))
    listed = page.locator("li.consent").count()

    # Choosing the purpose fills in its department and materials (htmx); the resident
    # narrows them down.
    page.select_option("#purpose", "subsistence-allowance")
    expect(page.locator("#department")).to_have_value("civil-affairs")
    assert page.locator('input[name="doc-id-card"]').is_checked()
    page.locator('input[name="doc-id-card"]').uncheck()
    assert page.locator('input[name="doc-household-register"]').is_checked()
    assert page.locator('input[name="doc-income-proof"]').is_checked()
    until = (demo.services.clock.now().astimezone(CHINA) + timedelta(days=60)).date()
    page.fill("#until", until.isoformat())
    page.fill("#max_uses", "3")
    page.get_by_role("button", name="预览").click()
    page.wait_for_url(re.compile(r"/me/consents/preview$"))
    sentence = page.locator(".sentence").inner_text()
    day = f"{until.year}年{until.month}月{until.day}日"
    assert sentence == (f"民政局可以查阅您的户口簿和收入证明，用于办理低保申请，有效期至{day}，"
                        "最多 3 次。")
    assert len(demo.services.views.consents(RESIDENT, limit=500)) == listed  # not yet
    shot(page, "me-consent-preview-zh")
    assert _violations(page) == []

    page.get_by_role("button", name="确认授权").click()
    page.wait_for_url(re.compile(r"/me/consents(#.*)?$"))
    granted = demo.services.views.consents(RESIDENT, limit=500)[0]
    assert (granted.department, granted.doc_types, granted.purpose, granted.max_uses) == (
        "civil-affairs", ("household-register", "income-proof"), "subsistence-allowance", 3)
    item = page.locator(f"#consent-{granted.consent_id}")
    assert item.get_attribute("data-status") == "active"
    assert "有效" in item.locator(".consent-status").inner_text()
    assert item.locator(".sentence").inner_text().endswith("最多 3 次（已用 0 次）。")
    assert page.locator("li.consent").count() == listed + 1
    shot(page, "me-consents-zh")
    assert _violations(page) == []

    page.get_by_role("button", name="English").click()
    expect(page.locator("h1")).to_have_text("My consents")
    english = item.locator(".sentence").inner_text()
    assert english.startswith("Civil Affairs Bureau may read your Household register (hukou) "
                              "and Proof of income to decide your Subsistence allowance")
    assert ", at most 3 times (used 0)." in english
    shot(page, "me-consents-en")
    assert _violations(page) == []
    assert item.locator(".consent-status").inner_text() == "Live"
    page.get_by_role("button", name="中文").click()
    expect(page.locator("h1")).to_have_text("我的授权")

    # Posted without the page's CSRF token: refused, nothing recorded, still live.
    client = _session_client(page, demo)
    head = demo.services.events.head()
    forged = [client.post(f"/me/consents/{granted.consent_id}/revoke", data={}),
              client.post("/me/consents", data={
                  "department": "housing", "purpose": "housing-subsidy",
                  "doc-property-cert": "on", "until": until.isoformat()})]
    assert [r.status_code for r in forged] == [403, 403]
    assert demo.services.events.head() == head
    assert demo.services.consents.consent(RESIDENT, granted.consent_id).revoked_at is None

    # Another resident's consent: not found, and still live.
    [theirs] = demo.services.views.consents(OTHER, limit=1)
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    other = client.post(f"/me/consents/{theirs.consent_id}/revoke", data={"csrf": csrf})
    assert other.status_code == 404
    assert demo.services.events.head() == head

    item.get_by_role("button", name="撤销授权").click()
    expect(item).to_have_attribute("data-status", "revoked")
    assert item.locator(".consent-status").inner_text() == "已撤销"
    assert demo.services.consents.consent(RESIDENT, granted.consent_id).revoked_at is not None
    assert item.get_by_role("button", name="撤销授权").count() == 0
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_erasure_needs_the_resident_id_typed_then_shreds_and_ends_the_session(
    browser: Any, demo: LiveApi
) -> None:
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    page.get_by_role("link", name="注销：销毁我的全部数据").click()
    page.wait_for_url(re.compile(r"/me/erase$"))
    assert "加密粉碎" in page.locator("main").inner_text()
    shot(page, "me-erase-zh")
    assert _violations(page) == []
    [held] = demo.services.views.library(RESIDENT, limit=1)
    document = demo.services.documents.find(held.document_id)
    client = _session_client(page, demo)
    head = demo.services.events.head()

    assert client.post("/me/erase", data={"confirm": RESIDENT}).status_code == 403  # no CSRF
    page.fill("#confirm", "注销")
    with page.expect_response(lambda r: r.request.method == "POST") as answered:
        page.get_by_role("button", name="注销并销毁我的数据").click()
    assert answered.value.status == 422
    assert "没有注销" in page.locator("main").inner_text()
    assert demo.services.events.head() == head
    assert not demo.services.residents.resident(RESIDENT).is_erased
    assert b"".join(demo.services.documents.content(document))  # still readable

    page.fill("#confirm", RESIDENT)
    with page.expect_response(lambda r: r.request.method == "POST") as answered:
        page.get_by_role("button", name="注销并销毁我的数据").click()
    assert answered.value.status == 200
    assert page.locator("h1").inner_text() == "已注销"
    shot(page, "me-erased-zh")
    assert _violations(page) == []
    assert demo.services.residents.resident(RESIDENT).is_erased
    with pytest.raises(ResidentErased):
        demo.services.documents.content(document)
    assert client.get("/me").headers.get("location") == "/signin"  # the session is over
    page.goto("/me")
    assert page.url.endswith("/signin")
    sign_in(page, "resident", "/me")  # signing in again finds the resident erased
    assert page.locator("h1").inner_text() == "已注销"
    page.context.close()
