"""No request another site can make the browser send records a fetch. The session cookie is
SameSite=Lax, so a link on any site still carries it, and a GET carries no CSRF token: the
pages that judge, charge and record a fetch on a GET refuse a request whose Fetch Metadata
(``Sec-Fetch-Site``) says another site made it (403, nothing judged, nothing recorded), while
their own links, followed in Chromium, keep working."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from keys.tokens import Principal
from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, demo, open_page, sign_in
from vault.inputs import ConsentRequest

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser", "demo"]  # fixtures

OFFICER = Principal(subject="officer-li", role="officer", department="civil-affairs",
                    token_id=None)
ATTACK = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
          "Sec-Fetch-Dest": "document", "Referer": "https://evil.example/"}


def _one_use_consent(api: LiveApi) -> str:
    """李娜 lets 民政局 read her ID card once, for 临时救助; returns the card's id."""
    services = api.services
    documents = map(services.documents.find,
                    reversed(services.residents.resident("li-na").document_ids))
    card = next(d for d in documents if d.doc_type == "id-card" and d.is_active)
    services.consents.grant("li-na", ConsentRequest(
        "civil-affairs", ("id-card",), "temporary-assistance",
        valid_until=services.clock.now() + timedelta(days=30), max_uses=1))
    services.view_runner.catch_up()
    return str(card.id)


def test_a_fetch_another_site_asks_for_is_refused_and_leaves_the_consent_whole(
    demo: LiveApi,
) -> None:
    card = _one_use_consent(demo)
    cookie, _ = demo.app.state.web_sessions.start(OFFICER)
    client = httpx.Client(base_url=demo.base_url, cookies={"cv_session": cookie})
    url = f"/work/fetch/li-na/{card}?purpose=temporary-assistance"
    [entry, *_] = demo.services.views.queue("civil-affairs", limit=1)
    material = f"/work/applications/{entry.application.application_id}/materials/id-card"
    head = demo.services.events.head()
    for site in ("cross-site", "same-site"):  # a sibling subdomain is another site too
        for target in (url, material):
            refused = client.get(target, headers={**ATTACK, "Sec-Fetch-Site": site})
            assert refused.status_code == 403, (site, target)
            assert refused.headers["content-type"].startswith("text/html")
            assert "x-access-id" not in refused.headers
            assert "其他网站" in refused.text
    assert demo.services.events.head() == head  # nothing judged, nothing recorded
    # The one use is still there for the officer's own page (and then it is spent).
    own = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
    shown = client.get(url, headers=own)
    assert (shown.status_code, shown.headers["content-type"]) == (200, "image/png")
    assert "x-access-id" in shown.headers
    assert client.get(url, headers=own).status_code == 403  # used up
    # An address the officer types (Sec-Fetch-Site: none) is theirs, not another site's.
    typed = client.get(material, headers={"Sec-Fetch-Site": "none"})
    assert typed.status_code == 200
    assert "x-access-id" in typed.headers


def _opened(page: Any, link: Any, part: str) -> Any:
    """The response to a link of the page that opens in a new tab (target=_blank)."""
    with page.context.expect_event("response", lambda r: part in r.url) as response:
        link.click()
    return response.value


def test_a_link_on_another_site_fetches_nothing_and_the_pages_own_links_do(
    browser: Any, demo: LiveApi
) -> None:
    card = _one_use_consent(demo)
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    sign_in(page, "officer", "/work")
    target = f"{demo.base_url}/work/fetch/li-na/{card}?purpose=temporary-assistance"
    # Another site, served here by the test (nothing leaves the machine), links to a fetch.
    page.route("https://evil.example/**", lambda route: route.fulfill(
        content_type="text/html",
        body=f'<!doctype html><title>x</title><a id="bait" href="{target}">win</a>'))
    page.goto("https://evil.example/")
    head = demo.services.events.head()
    with page.expect_navigation():
        page.locator("#bait").click()
    assert page.url == target
    assert page.locator("h1").inner_text() == "请求被拒绝"
    assert demo.services.events.head() == head
    # The reviewer's own page: its link (a new tab) fetches, under the one use.
    page.goto("/work/fetch?resident=li-na&purpose=temporary-assistance")
    link = page.locator(f'ul.materials li[data-document-id="{card}"] a')
    shown = _opened(page, link, f"/work/fetch/li-na/{card}")
    assert shown.status == 200
    assert shown.headers["content-type"] == "image/png"
    assert demo.services.events.head() > head
    # An application's material, from its page's link, too.
    [entry, *_] = demo.services.views.queue("civil-affairs", limit=1)
    page.goto(f"/work/applications/{entry.application.application_id}")
    link = page.locator('li[data-doc-type="id-card"] a')
    shown = _opened(page, link, "/materials/id-card")
    assert shown.status == 200
    assert re.match(r"image/|application/pdf", shown.headers["content-type"])
    assert all(url.startswith(demo.base_url) for url in seen if "evil.example" not in url)
    page.context.close()
