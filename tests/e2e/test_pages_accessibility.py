"""Every page checked with axe-core (the rules of WCAG 2.x A and AA and axe's best
practices), in Chromium, as each of the demo's people sees it, in Chinese and in English:
no violation of any impact. The pages checked are each actor's tabs (the header's
navigation, so a new tab is checked as soon as it exists), the sign-in page, and the first
application each list links to."""

from __future__ import annotations

import re
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from adapters.web.pages import HOMES, NAVIGATION, PERSONAS
from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, demo, open_page, sign_in

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser", "demo"]  # fixtures

DETAILS = re.compile(r"^/(work|me)/applications/[0-9a-f-]{36}$")
"""Pages a list links to that are checked too: the first of each list."""


def _violations(page: Any) -> list[str]:
    results = Axe().run(page)
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(n["target"][0] for n in v["nodes"][:3])
        for v in results.response["violations"]
    ]


def test_the_signin_page_has_no_accessibility_violation(browser: Any, demo: LiveApi) -> None:
    page = open_page(browser, demo, [])
    page.goto("/signin")
    assert _violations(page) == []
    page.context.close()


@pytest.mark.parametrize("role", sorted(NAVIGATION))
@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_page_of_each_actor_has_no_accessibility_violation(
    browser: Any, demo: LiveApi, role: str, language: str
) -> None:
    assert any(p.role == role for p in PERSONAS)
    page = open_page(browser, demo, [])
    sign_in(page, role, HOMES[role])
    if language == "en":
        page.get_by_role("button", name="English").click()
        page.wait_for_load_state()
    found: list[str] = []
    checked = 0
    for href, _ in NAVIGATION[role]:
        page.goto(href)
        found += _violations(page)
        checked += 1
        detail = next(
            (h for h in page.locator("main a[href]").evaluate_all(
                "links => links.map(a => a.getAttribute('href'))") if DETAILS.match(h or "")),
            None,
        )
        if detail is not None:
            page.goto(detail)
            found += _violations(page)
            checked += 1
    assert checked >= len(NAVIGATION[role])
    assert found == []
    page.context.close()


def test_the_check_finds_what_it_looks_for(browser: Any, demo: LiveApi) -> None:
    """A picture with no words for those who cannot see it is a violation: the check runs."""
    page = open_page(browser, demo, [])
    page.goto("/signin")
    page.evaluate("document.querySelector('main').append(document.createElement('img'))")
    assert any("image-alt" in v for v in _violations(page))
    page.context.close()
