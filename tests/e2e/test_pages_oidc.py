"""Signing in with the city's identity provider (统一身份认证), in a real browser against a
real OpenID Provider: django-oauth-toolkit, run by :mod:`tests.oidc_provider` on 127.0.0.1
for this module. The authorization code flow with PKCE (S256): the resident lands on /me
and the officer on /work as the claims map them; a tampered state, a replayed callback, an
unknown role, an ID token for someone else or with another nonce or a broken signature are
refused with a page that says so, and no session; the provider itself refuses the code
without the verifier our side sent."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from adapters.community import seed
from adapters.demo_city import DemoClock
from adapters.settings import Settings
from adapters.web.oidc import CityProvider, Refused, principal_from
from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, open_page, shot
from tests.oidc_provider import Client, Provider, start_provider, stop_provider

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser"]  # fixtures

CLIENT = Client(
    "civicvault", "civicvault-test-secret",
    redirect_uris=("http://127.0.0.1/signin/oidc/callback",),
    post_logout_redirect_uris=("http://127.0.0.1/signin",),
)
OTHER = Client("other-service", "other-service-secret",
               redirect_uris=("http://127.0.0.1/elsewhere/callback",))
PEOPLE: dict[str, dict[str, Any]] = {
    "zhangwei": {"password": "zhang-Wei-2026", "claims": {"name": "张伟",
                                                          "resident_id": "zhang-wei"}},
    "liming": {"password": "li-Ming-2026", "claims": {
        "name": "李明", "resident_id": "officer-li", "role": "officer",
        "dept": "civil-affairs"}},
    "mayor": {"password": "the-Mayor-2026", "claims": {"name": "市长",
                                                      "resident_id": "mayor", "role": "mayor"}},
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    started = start_provider(tmp_path_factory.mktemp("oidc-provider"), PEOPLE, [CLIENT, OTHER])
    yield started
    stop_provider(started)


def _oidc_settings(provider: Provider) -> dict[str, Any]:
    return {"oidc_issuer": provider.issuer, "oidc_client_id": CLIENT.client_id,
            "oidc_client_secret": CLIENT.client_secret, "oidc_subject_claim": "resident_id"}


@pytest.fixture
def bare_city(live_api_factory: Callable[..., LiveApi], provider: Provider) -> LiveApi:
    """A service signing in with the test provider alone: no demo, no city seeded."""
    return live_api_factory(**_oidc_settings(provider))


@pytest.fixture
def city(live_api_factory: Callable[..., LiveApi], provider: Provider) -> LiveApi:
    """The demo city, signing in with the test provider as well as the demo's picker."""
    clock = DemoClock()
    api = live_api_factory(demo=True, clock=clock,
                           before_serving=lambda services: seed(services, clock),
                           **_oidc_settings(provider))
    api.services.view_runner.catch_up()
    return api


def _sign_in_at_provider(page: Any, provider: Provider, username: str) -> None:
    page.get_by_role("link", name="统一身份认证登录").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.origin)}/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", PEOPLE[username]["password"])
    page.get_by_role("button", name="登录").click()


def _callback_held_back(page: Any, city: LiveApi, provider: Provider, username: str) -> str:
    """Where the provider sends the browser back to, for a flow begun in ``page``'s browser
    by someone signed in at the provider, not yet followed (a browser cannot be stopped in
    the middle of a redirect; the page's own request client shares its cookies)."""
    page.goto(f"{provider.origin}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PEOPLE[username]["password"])
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()
    begun = page.request.get(f"{city.base_url}/signin/oidc", max_redirects=0)
    assert begun.status == 303
    authorized = page.request.get(begun.headers["location"], max_redirects=0)
    assert authorized.status == 302
    location: str = authorized.headers["location"]
    assert location.startswith(f"{city.base_url}/signin/oidc/callback?")
    return location


def _session_cookie(page: Any) -> dict[str, Any] | None:
    return next((c for c in page.context.cookies() if c["name"] == "cv_session"), None)


def test_a_resident_signs_in_at_the_city_provider_with_pkce_and_lands_on_the_library(
    browser: Any, city: LiveApi, provider: Provider
) -> None:
    seen: list[str] = []
    page = open_page(browser, city, seen)
    hops: list[str] = []  # every request, redirects included
    page.on("request", lambda request: hops.append(request.url))
    page.goto("/signin")
    assert page.locator('[data-role="resident"]').count() == 1  # the demo's picker stays
    shot(page, "signin-oidc-zh")
    page.get_by_role("link", name="统一身份认证登录").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.origin)}/login/"))
    assert "统一身份认证平台" in page.locator("h1").inner_text()
    shot(page, "provider-login")
    page.fill("#id_username", "zhangwei")
    page.fill("#id_password", PEOPLE["zhangwei"]["password"])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(rf"^{re.escape(city.base_url)}/me$"))
    assert page.locator("h1").inner_text() == "我的证照"
    assert "居民身份证" in page.locator("main").inner_text()  # zhang-wei's library
    assert page.locator("header .who").inner_text() == "zhang-wei"

    # What our side asked the provider for: a code, with an S256 challenge, a state and a
    # nonce; the verifier itself never went through the browser.
    [authorize, *_] = [url for url in hops if url.startswith(f"{provider.issuer}/authorize/")]
    asked = {name: values[0] for name, values in parse_qs(urlsplit(authorize).query).items()}
    assert asked["response_type"] == "code"
    assert asked["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", asked["code_challenge"])
    assert asked["state"]
    assert asked["nonce"]
    assert all("code_verifier" not in url for url in hops)
    assert all(url.startswith((city.base_url, provider.origin)) for url in hops), hops

    cookie = _session_cookie(page)
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Lax")
    assert all(c["name"] != "cv_oidc" for c in page.context.cookies())  # the flow is over
    page.context.close()


def test_an_officer_with_role_and_department_claims_lands_on_the_queue(
    browser: Any, bare_city: LiveApi, provider: Provider
) -> None:
    page = open_page(browser, bare_city, [])
    page.goto("/signin")
    _sign_in_at_provider(page, provider, "liming")
    page.wait_for_url(re.compile(rf"^{re.escape(bare_city.base_url)}/work$"))
    assert page.locator("header .who").inner_text() == "officer-li"
    assert page.locator("h1").count() == 1

    # Signing out ends our session; then, on the way out, the provider's too
    # (RP-initiated logout: the provider asks, and sends the browser back to /signin).
    page.get_by_role("button", name="退出").click()
    page.wait_for_url(re.compile(rf"^{re.escape(bare_city.base_url)}/signin$"))
    page.get_by_role("link", name="退出统一身份认证平台").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.issuer)}/logout/"))
    page.locator('input[name="allow"]').click()
    page.wait_for_url(re.compile(rf"^{re.escape(bare_city.base_url)}/signin$"))
    # Signing in again needs the password again: the provider's session is over too.
    page.get_by_role("link", name="统一身份认证登录").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.origin)}/login/"))
    page.context.close()


def test_a_tampered_state_or_a_replayed_callback_is_refused_and_the_provider_wants_the_verifier(
    browser: Any, bare_city: LiveApi, provider: Provider
) -> None:
    page = open_page(browser, bare_city, [])
    callback = _callback_held_back(page, bare_city, provider, "zhangwei")
    returned = {name: values[0] for name, values in parse_qs(urlsplit(callback).query).items()}

    # The provider enforces PKCE: the code without the verifier, or with another, is no good.
    token_endpoint = f"{provider.issuer}/token/"
    for verifier, error in (({}, "invalid_request"),
                            ({"code_verifier": secrets.token_urlsafe(48)}, "invalid_grant")):
        answer = httpx.post(token_endpoint, auth=(CLIENT.client_id, CLIENT.client_secret),
                            data={"grant_type": "authorization_code", "code": returned["code"],
                                  "redirect_uri": callback.split("?")[0], **verifier})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == error, answer.text

    # A state that is not the one our side handed out: refused, no session.
    tampered = callback.replace(returned["state"], returned["state"][:-4] + "AAAA")
    assert page.goto(tampered).status == 400
    assert page.locator(".message").get_attribute("data-reason") == "flow"
    assert _session_cookie(page) is None

    # The callback as the provider sent it, in another browser than the one that began the
    # flow (an attacker's, say): refused, and no session there.
    other = open_page(browser, bare_city, [])
    assert other.goto(callback).status == 400
    assert other.locator(".message").get_attribute("data-reason") == "flow"
    assert _session_cookie(other) is None

    # In the browser that began it: our side exchanges the code with its verifier.
    page.goto(callback)
    page.wait_for_url(re.compile(rf"^{re.escape(bare_city.base_url)}/me$"))
    assert _session_cookie(page) is not None

    # The same callback again, in either browser: refused, no new session.
    assert other.goto(callback).status == 400
    assert other.locator(".message").get_attribute("data-reason") == "flow"
    assert _session_cookie(other) is None
    assert page.goto(callback).status == 400
    shot(other, "signin-oidc-refused-zh")
    other.context.close()
    page.context.close()


def test_someone_whose_role_has_no_pages_is_refused(
    browser: Any, bare_city: LiveApi, provider: Provider
) -> None:
    page = open_page(browser, bare_city, [])
    page.goto("/signin")
    _sign_in_at_provider(page, provider, "mayor")
    page.wait_for_url(re.compile(rf"^{re.escape(bare_city.base_url)}/signin/oidc/callback"))
    assert page.locator(".message").get_attribute("data-reason") == "claims"
    assert "无法识别" in page.locator("main").inner_text()
    assert _session_cookie(page) is None
    page.context.close()


def test_the_provider_saying_no_is_a_page_that_says_so(
    browser: Any, bare_city: LiveApi, provider: Provider
) -> None:
    page = open_page(browser, bare_city, [])
    page.goto("/signin")
    page.get_by_role("link", name="统一身份认证登录").click()
    page.wait_for_url(re.compile(rf"^{re.escape(provider.origin)}/login/"))
    # The provider's answer for this flow had the person refused (access_denied).
    state = parse_qs(urlsplit(parse_qs(urlsplit(page.url).query)["next"][0]).query)["state"][0]
    answer = page.goto(f"{bare_city.base_url}/signin/oidc/callback?"
                       + urlencode({"state": state, "error": "access_denied"}))
    assert answer.status == 400
    assert page.locator(".message").get_attribute("data-reason") == "provider"
    assert "access_denied" in page.locator("main").inner_text()
    assert _session_cookie(page) is None
    page.context.close()


def test_the_signin_and_refusal_pages_read_in_both_languages_with_no_accessibility_violation(
    browser: Any, bare_city: LiveApi
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    def violations() -> list[str]:
        return [f"{page.url}: {v['id']} ({v['impact']}): {v['help']}"
                for v in Axe().run(page).response["violations"]]

    page = open_page(browser, bare_city, [])
    page.goto("/signin")
    found = violations()
    page.get_by_role("button", name="English").click()
    page.wait_for_url(re.compile(r"/signin$"))
    assert page.get_by_role("link", name="Sign in with the city's identity provider").count() == 1
    found += violations()
    shot(page, "signin-oidc-en")
    assert page.goto("/signin/oidc/callback?state=forged").status == 400
    assert "no longer valid" in page.locator("main").inner_text()
    found += violations()
    assert found == []
    page.context.close()


def test_without_a_provider_configured_there_is_no_button_and_no_flow(
    browser: Any, live_api_factory: Callable[..., LiveApi]
) -> None:
    api = live_api_factory()
    page = open_page(browser, api, [])
    page.goto("/signin")
    assert page.locator('[data-signin="oidc"]').count() == 0
    assert "尚未配置身份认证" in page.locator("main").inner_text()
    assert page.goto("/signin/oidc").status == 404
    assert page.locator(".message").get_attribute("data-reason") == "not-configured"
    page.context.close()


def test_a_provider_that_does_not_answer_is_a_page_that_says_so_within_the_timeout(
    browser: Any, live_api_factory: Callable[..., LiveApi]
) -> None:
    with socket.socket() as silent:  # takes connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        api = live_api_factory(oidc_issuer=f"http://127.0.0.1:{port}/o",
                               oidc_client_id="civicvault", oidc_timeout_seconds=1)
        page = open_page(browser, api, [])
        started = time.monotonic()
        assert page.goto("/signin/oidc").status == 502
        assert time.monotonic() - started < 10
        assert page.locator(".message").get_attribute("data-reason") == "unreachable"
        assert "cv_oidc" not in {c["name"] for c in page.context.cookies()}
        page.context.close()


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"resident_id": "zhang-wei"}, ("zhang-wei", "resident", None, None)),
        ({"resident_id": "officer-li", "role": "officer", "dept": "civil-affairs"},
         ("officer-li", "officer", "civil-affairs", None)),
        ({"resident_id": "clerk-wang", "role": "clerk", "unit": "heping-lane"},
         ("clerk-wang", "clerk", None, "heping-lane")),
        ({"resident_id": "officer-li", "role": "officer"}, "an officer's token must name"),
        ({"resident_id": "clerk-wang", "role": "clerk"}, "must name its unit"),
        ({"resident_id": "bot", "role": "credit-platform"}, "has no pages"),
        ({"resident_id": "x", "role": "mayor"}, "has no pages"),
        ({"sub": "7"}, "sub must be"),  # no resident_id claim: no subject
    ],
)
def test_claims_map_to_a_principal_as_the_settings_say(
    claims: dict[str, Any], expected: tuple[Any, ...] | str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, oidc_issuer="https://idp.example/", oidc_client_id="c",
                        oidc_subject_claim="resident_id")
    if isinstance(expected, str):
        with pytest.raises(Refused, match=re.escape(expected)) as refused:
            principal_from(claims, settings)
        assert refused.value.status == 403
        return
    principal = principal_from(claims, settings)
    assert (principal.subject, principal.role, principal.department, principal.unit) == expected


def _id_token_from(provider: Provider, client: Client, redirect_uri: str,
                   nonce: str) -> str:
    """An ID token the provider issues to ``client`` for 张伟, by the same flow without a
    browser (its login form, then the code exchanged with the verifier)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    with httpx.Client(base_url=provider.origin) as browserless:
        query = urlencode({"response_type": "code", "client_id": client.client_id,
                           "redirect_uri": redirect_uri, "scope": "openid profile",
                           "state": "s", "nonce": nonce, "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        login = browserless.get("/o/authorize/?" + query, follow_redirects=True)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        assert token is not None
        back = browserless.post(str(login.url), data={
            "csrfmiddlewaretoken": token.group(1), "username": "zhangwei",
            "password": PEOPLE["zhangwei"]["password"],
            "next": parse_qs(urlsplit(str(login.url)).query)["next"][0]})
        while back.status_code == 302 and not back.headers["location"].startswith(redirect_uri):
            back = browserless.get(back.headers["location"])
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        answer = browserless.post("/o/token/", auth=(client.client_id, client.client_secret),
                                  data={"grant_type": "authorization_code", "code": code,
                                        "redirect_uri": redirect_uri, "code_verifier": verifier})
    answer.raise_for_status()
    id_token: str = answer.json()["id_token"]
    return id_token


def test_an_id_token_for_another_client_with_another_nonce_or_a_broken_signature_is_refused(
    provider: Provider, tmp_path: Path
) -> None:
    ours = CityProvider(Settings(data_dir=tmp_path, **_oidc_settings(provider)))
    redirect_uri = "http://127.0.0.1:1/signin/oidc/callback"
    mine = _id_token_from(provider, CLIENT, redirect_uri, nonce="n-1")
    assert ours.verify(mine, "n-1")["resident_id"] == "zhang-wei"

    with pytest.raises(Refused, match="nonce"):
        ours.verify(mine, "n-2")
    header, claims, signature = mine.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    broken = f"{header}.{claims}.{signature[:middle]}{flipped}{signature[middle + 1:]}"
    with pytest.raises(Refused, match="Signature"):
        ours.verify(broken, "n-1")
    theirs = _id_token_from(provider, OTHER, "http://127.0.0.1:1/elsewhere/callback", "n-1")
    with pytest.raises(Refused, match=r"[Aa]udience"):
        ours.verify(theirs, "n-1")
