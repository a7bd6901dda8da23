"""The page's consent form is exactly as strict as ``POST /v1/me/consents``: the day it
ends is read as the API reads ``expires_at`` (a year from 1900 to 2199), its uses as the
API bounds them. A form the API would refuse grants nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from keys.tokens import Principal
from tests.e2e.conftest import LiveApi
from vault.workdays import CHINA

RESIDENT = "zhang-wei"
CONSENT = {"department": "civil-affairs", "purpose": "subsistence-allowance"}


Both = tuple[LiveApi, httpx.Client, httpx.Client, str]


@pytest.fixture
def both(live_api_factory: Callable[..., LiveApi]) -> Both:
    """A live server; 张伟 through the API (a token) and through the pages (a session)."""
    api = live_api_factory()
    cookie, session = api.app.state.web_sessions.start(Principal(
        subject=RESIDENT, role="resident", department=None, token_id=None))
    page = httpx.Client(base_url=api.base_url, cookies={"cv_session": cookie})
    assert page.get("/me").status_code == 200  # registered on first use
    return api, api.client("resident", RESIDENT), page, session.csrf


def _grant_on_page(page: httpx.Client, csrf: str, until: str, uses: str = "") -> int:
    return page.post("/me/consents", data={
        "csrf": csrf, **CONSENT, "doc-id-card": "on", "until": until, "max_uses": uses,
    }).status_code


def _grant_by_api(api: httpx.Client, until: str, uses: object = None) -> int:
    body = {**CONSENT, "doc_types": ["id-card"], "expires_at": f"{until}T23:59:59+08:00"}
    if uses is not None:
        body["max_uses"] = uses
    return api.post("/v1/me/consents", json=body).status_code


def test_a_consent_form_ending_where_the_api_refuses_grants_nothing(
    both: Both,
) -> None:
    live, api, page, csrf = both
    head = live.services.events.head()
    for until in ("9999-12-31", "2200-01-01"):
        assert _grant_by_api(api, until) == 422
        assert _grant_on_page(page, csrf, until) == 422, until
    assert _grant_on_page(page, csrf, "2026-12-31", "١٢") == 422  # Arabic-Indic 12
    assert _grant_on_page(page, csrf, "2026-12-31", "1000001") == 422
    assert live.services.events.head() == head  # nothing granted
    # What the API takes, the page takes: the last day it allows, and a whole number.
    assert _grant_by_api(api, "2199-12-31", 12) == 201
    assert _grant_on_page(page, csrf, "2199-12-31", "12") == 303
    live.services.view_runner.catch_up()
    [on_page, by_api] = live.services.views.consents(RESIDENT, limit=2)
    assert on_page.valid_until == by_api.valid_until
    assert on_page.max_uses == by_api.max_uses == 12


def test_a_consent_forms_day_is_written_as_the_api_writes_it(
    both: Both,
) -> None:
    """Python's date reader also takes 20261231 and 2026-W53-1; the API takes neither."""
    live, api, page, csrf = both
    soon = (live.services.clock.now().astimezone(CHINA).date() + timedelta(days=30))
    head = live.services.events.head()
    for until in (soon.strftime("%Y%m%d"), soon.strftime("%G-W%V-%u"), "2026-02-30", ""):
        assert _grant_by_api(api, until) == 422, until
        assert _grant_on_page(page, csrf, until) == 422, until
    assert live.services.events.head() == head
