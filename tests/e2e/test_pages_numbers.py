"""A number typed into a page is read as the API reads one: ASCII digits, bounded, within
its range. Unicode digits (``²``, ``١٢``) pass ``str.isdigit``, and ``int`` chokes on
``²`` and on 5,000 digits: each is the page's own 422, never a 500, and records nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from keys.tokens import Principal
from tests.e2e.conftest import LiveApi
from vault.workdays import CHINA

BAD_NUMBERS = ("²", "١٢", "5" * 5000)


@pytest.fixture
def resident(live_api_factory: Callable[..., LiveApi]) -> tuple[LiveApi, httpx.Client, str]:
    """A live server, 张伟 signed in to it (registered), and his session's CSRF token."""
    api = live_api_factory()
    cookie, session = api.app.state.web_sessions.start(Principal(
        subject="zhang-wei", role="resident", department=None, token_id=None))
    client = httpx.Client(base_url=api.base_url, cookies={"cv_session": cookie})
    assert client.get("/me").status_code == 200  # registered on first use
    return api, client, session.csrf


@pytest.mark.parametrize("path", ["/me/consents/preview", "/me/consents"])
def test_a_consents_uses_in_other_digits_are_refused_on_the_form(
    resident: tuple[LiveApi, httpx.Client, str], path: str
) -> None:
    api, client, csrf = resident
    until = (api.services.clock.now().astimezone(CHINA).date() + timedelta(days=30)).isoformat()
    head = api.services.events.head()
    for uses in BAD_NUMBERS:
        answer = client.post(path, data={
            "csrf": csrf, "department": "civil-affairs", "purpose": "subsistence-allowance",
            "doc-id-card": "on", "until": until, "max_uses": uses})
        assert answer.status_code == 422, uses[:10]
        assert "max_uses" in answer.text
    assert api.services.events.head() == head


def test_a_page_of_applications_before_a_place_in_other_digits_is_refused(
    resident: tuple[LiveApi, httpx.Client, str],
) -> None:
    _, client, _ = resident
    for before in (*BAD_NUMBERS, "-1"):
        assert client.get("/me/applications", params={"before": before}).status_code == 422
    assert client.get("/me/applications", params={"before": "12"}).status_code == 200


def test_a_rating_in_other_digits_is_refused_whatever_the_application(
    resident: tuple[LiveApi, httpx.Client, str],
) -> None:
    api, client, csrf = resident
    head = api.services.events.head()
    for application_id in (str(uuid.uuid4()), "not-an-id"):
        for score in (*BAD_NUMBERS, "6"):
            answer = client.post(f"/me/applications/{application_id}/rating",
                                 data={"csrf": csrf, "score": score})
            assert answer.status_code == 422, (application_id, score[:10])
    assert api.services.events.head() == head
