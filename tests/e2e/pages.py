"""What the page tests share: Debian's Chromium driven by Playwright (``/usr/bin/chromium``;
``.ci/run`` installs it), the demo city on a live loopback server, a page that records every
request it makes, signing in as one of the demo's people, and screenshots in
``test-artifacts/``."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.community import seed
from adapters.demo_city import DemoClock
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
    """`serve --demo`: the city and its six weeks of applications, on a clock of its own."""
    clock = DemoClock()
    api = live_api_factory(demo=True, clock=clock,
                           before_serving=lambda services: seed(services, clock))
    api.services.view_runner.catch_up()
    return api


def open_page(browser: Any, api: LiveApi, seen: list[str]) -> Any:
    context = browser.new_context(base_url=api.base_url, locale="zh-CN")

    def record(route: Any) -> None:
        seen.append(route.request.url)
        route.continue_()

    context.route("**/*", record)
    return context.new_page()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, role: str, home: str) -> None:
    """Sign in as the demo's person of ``role`` and land on their page ``home``."""
    page.goto("/signin")
    page.locator(f'[data-role="{role}"]').click()
    page.wait_for_url(re.compile(rf"{re.escape(home)}$"))
