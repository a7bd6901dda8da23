"""The pages in a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``;
``.ci/run`` installs it) against a live loopback server with the demo city. Every request a
page makes stays on the server's origin; cookies are HttpOnly, Secure, SameSite; a form
without its CSRF token is refused; signing out ends the session on the server; the pages
read in Chinese and, toggled, in English; screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.community import seed
from tests.e2e.conftest import LiveApi

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing: apt-get install -y chromium (.ci/run does)")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def demo(live_api_factory: Callable[..., LiveApi]) -> LiveApi:
    api = live_api_factory(demo=True, before_serving=seed)
    api.services.view_runner.catch_up()
    return api


def _page(browser: Any, api: LiveApi, seen: list[str]) -> Any:
    context = browser.new_context(base_url=api.base_url, locale="zh-CN")

    def record(route: Any) -> None:
        seen.append(route.request.url)
        route.continue_()

    context.route("**/*", record)
    return context.new_page()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_resident_signs_in_sees_the_library_in_both_languages_and_signs_out(
    browser: Any, demo: LiveApi
) -> None:
    seen: list[str] = []
    page = _page(browser, demo, seen)
    page.goto("/")
    assert page.url.endswith("/signin")
    _shot(page, "signin-zh")
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
    _shot(page, "me-zh")

    [cookie] = [c for c in page.context.cookies() if c["name"] == "cv_session"]
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Lax")
    assert "cv_session" not in page.evaluate("document.cookie")  # out of scripts' reach

    page.get_by_role("button", name="English").click()
    page.wait_for_url(re.compile(r"/me$"))
    assert page.locator("h1").inner_text() == "My documents"
    assert "Trust level" in page.locator("main").inner_text()
    _shot(page, "me-en")

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
    page = _page(browser, api, [])
    page.goto("/signin")
    assert page.locator("[data-role]").count() == 0
    assert "统一身份认证" in page.locator("main").inner_text()
    forged = httpx.post(f"{api.base_url}/signin/persona", data={"persona": "zhang-wei"})
    assert forged.status_code == 403
    page.context.close()
