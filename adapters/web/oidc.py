"""Signing in with the city's identity provider (统一身份认证): OpenID Connect, the
authorization code flow with PKCE (S256).

``GET /signin/oidc`` begins a flow: a random ``state``, ``nonce`` and PKCE verifier are kept
on the server (table ``cv_oidc_flows``, ten minutes, once only), bound to this browser by a
random value in an HttpOnly, SameSite=Lax cookie of the flow's own; the browser goes to the
provider's authorization endpoint (read from its discovery document) with the state, the
nonce and the verifier's S256 challenge. ``GET /signin/oidc/callback`` takes the flow back
(unknown, used, expired or another browser's: refused), exchanges the code at the token
endpoint server to server with the verifier, verifies the ID token (signature by the
provider's JWKS, issuer, audience, expiry, nonce), maps its claims to a principal as the
settings say, and starts a web session exactly as the demo's sign-in does. Every outbound
call has a timeout; whatever fails is a page that says so, and no session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
import jwt
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from adapters.settings import Settings
from adapters.web.deps import DatabaseDep, SettingsDep, WebSessionsDep
from adapters.web.pages import HOMES, SESSION_COOKIE, render, see_other
from keys.tokens import InvalidToken, Principal, principal_of
from projections.database import Database
from projections.schema import stamp, unstamp

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

FLOW_COOKIE = "cv_oidc"
FLOW_PATH = "/signin/oidc"
FLOW_LIFETIME = timedelta(minutes=10)
TABLE = "cv_oidc_flows"
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA"})
"""Signatures an ID token may carry: public-key ones only (never ``none``, never a secret
shared with the client)."""
DISCOVERY_SECONDS = 3600.0
"""How long the provider's discovery document is kept before it is read again."""


class Refused(Exception):
    """A sign-in that cannot go on: the page to show (``reason``), with its status."""

    def __init__(self, status: int, reason: str, detail: str,
                 error: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail
        self.error = error
        """The provider's own error code, when it said one (shown on the page)."""


@dataclass(frozen=True)
class Metadata:
    """What the provider's discovery document says we need."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    algorithms: frozenset[str]


@dataclass(frozen=True)
class Flow:
    """One sign-in under way, as the server keeps it."""

    verifier: str
    nonce: str
    redirect_uri: str


class Flows:
    """The flows under way, kept on the server (every worker sees them): looked up by the
    hash of their state, taken back once only, by the browser that began them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._table = db.table(TABLE)
        with db.transaction() as run:
            run.schema_lock()
            run(f"CREATE TABLE IF NOT EXISTS {self._table} (state_hash TEXT PRIMARY KEY, "
                "browser_hash TEXT NOT NULL, verifier TEXT NOT NULL, nonce TEXT NOT NULL, "
                "redirect_uri TEXT NOT NULL, expires_at TEXT NOT NULL)")

    def begin(self, redirect_uri: str) -> tuple[str, str, Flow]:
        """A new flow: its state, the value that binds it to the browser, and the flow."""
        state, browser = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        flow = Flow(secrets.token_urlsafe(48), secrets.token_urlsafe(32), redirect_uri)
        now = _now()
        with self._db.transaction() as run:
            run(f"DELETE FROM {self._table} WHERE expires_at <= ?", (stamp(now),))  # noqa: S608
            run(f"INSERT INTO {self._table} (state_hash, browser_hash, verifier, nonce, "  # noqa: S608
                "redirect_uri, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (_hashed(state), _hashed(browser), flow.verifier, flow.nonce, redirect_uri,
                 stamp(now + FLOW_LIFETIME)))
        return state, browser, flow

    def finish(self, state: str | None, browser: str | None) -> Flow:
        """The flow ``state`` names, taken back (it cannot be used again) if it is this
        browser's and still fresh."""
        if not state or not browser or len(state) > 128 or len(browser) > 128:
            raise Refused(400, "flow", "no state, or no flow cookie")
        # Only the browser that began it can take a flow back: from another, it stays.
        with self._db.transaction() as run:
            rows = run(f"DELETE FROM {self._table} WHERE state_hash = ? "  # noqa: S608
                       "AND browser_hash = ? RETURNING verifier, nonce, redirect_uri, expires_at",
                       (_hashed(state), _hashed(browser)))
        if not rows:
            raise Refused(400, "flow", "unknown or used state, or another browser's flow")
        verifier, nonce, redirect_uri, expires_text = rows[0]
        expires_at = unstamp(expires_text)
        if expires_at is None or expires_at <= _now():
            raise Refused(400, "flow", "the flow expired")
        return Flow(verifier, nonce, redirect_uri)


class CityProvider:
    """The city's identity provider as the settings name it: its discovery document, the
    authorization request, the token exchange and the ID token's verification."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer is not None
        assert settings.oidc_client_id is not None
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self._secret = secret.get_secret_value() if secret is not None else None
        self._scopes = settings.oidc_scopes
        self._timeout = settings.oidc_timeout_seconds
        self._leeway = settings.token_leeway_seconds
        self._lock = threading.Lock()
        self._metadata: tuple[float, Metadata] | None = None
        self._keys: jwt.PyJWKClient | None = None

    def metadata(self) -> Metadata:
        """The discovery document, read at most once an hour."""
        with self._lock:
            if self._metadata is not None and time.monotonic() < self._metadata[0]:
                return self._metadata[1]
            document = self._get_json(
                self.issuer.rstrip("/") + "/.well-known/openid-configuration")
            metadata = _metadata_of(document, self.issuer)
            self._metadata = (time.monotonic() + DISCOVERY_SECONDS, metadata)
            if self._keys is None or self._keys.uri != metadata.jwks_uri:
                self._keys = jwt.PyJWKClient(metadata.jwks_uri, cache_keys=True,
                                             lifespan=int(DISCOVERY_SECONDS),
                                             timeout=int(max(1, self._timeout)))
            return metadata

    def authorization_url(self, state: str, flow: Flow) -> str:
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(flow.verifier.encode()).digest()).rstrip(b"=").decode()
        query = {"response_type": "code", "client_id": self.client_id,
                 "redirect_uri": flow.redirect_uri, "scope": self._scopes, "state": state,
                 "nonce": flow.nonce, "code_challenge": challenge,
                 "code_challenge_method": "S256"}
        endpoint = self.metadata().authorization_endpoint
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)

    def exchange(self, code: str, flow: Flow) -> str:
        """The ID token the token endpoint gives for ``code`` and the flow's verifier."""
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": flow.redirect_uri, "code_verifier": flow.verifier}
        headers = {"Accept": "application/json"}
        if self._secret is None:
            form["client_id"] = self.client_id
        else:  # client_secret_basic: each part form-encoded first (RFC 6749, 2.3.1)
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            answer = httpx.post(self.metadata().token_endpoint, data=form, headers=headers,
                                timeout=self._timeout, follow_redirects=False)
        except httpx.HTTPError as error:
            raise Refused(502, "unreachable", f"token endpoint: {error!r}") from error
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200 or not isinstance(body, dict):
            error_code = body.get("error") if isinstance(body, dict) else None
            raise Refused(400, "token", f"token endpoint said {answer.status_code} {error_code}")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise Refused(400, "token", "the token response has no ID token")
        return id_token

    def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims, once its signature, issuer, audience, expiry and nonce
        are what they must be."""
        metadata = self.metadata()
        try:
            algorithm = jwt.get_unverified_header(id_token).get("alg")
            if algorithm not in metadata.algorithms:
                raise Refused(400, "token", f"ID token signed with {algorithm!r}")
            assert self._keys is not None
            key = self._keys.get_signing_key_from_jwt(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token, key.key, algorithms=[algorithm], audience=self.client_id,
                issuer=metadata.issuer, leeway=self._leeway,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]})
        except jwt.PyJWKClientConnectionError as error:
            raise Refused(502, "unreachable", f"JWKS: {error}") from error
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as error:
            raise Refused(400, "token", f"ID token: {error}") from error
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise Refused(400, "token", "the ID token's nonce is not the flow's")
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise Refused(400, "token", "the ID token names other audiences and not us as azp")
        return claims

    def _get_json(self, url: str) -> Mapping[str, Any]:
        try:
            answer = httpx.get(url, timeout=self._timeout, follow_redirects=False,
                               headers={"Accept": "application/json"})
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as error:
            raise Refused(502, "unreachable", f"{url}: {error!r}") from error
        if not isinstance(document, dict):
            raise Refused(502, "unreachable", f"{url}: not a JSON object")
        return document


def principal_from(claims: Mapping[str, Any], settings: Settings) -> Principal:
    """Who the ID token's claims say this is, mapped as the settings say: the subject from
    ``oidc_subject_claim``, the role from ``oidc_role_claim`` (a resident when absent), the
    department and unit from theirs; then the same rules as a token's claims."""
    role = claims.get(settings.oidc_role_claim, "resident")
    mapped = {"sub": claims.get(settings.oidc_subject_claim), "role": role,
              "dept": claims.get(settings.oidc_department_claim),
              "unit": claims.get(settings.oidc_unit_claim)}
    if role not in HOMES:
        raise Refused(403, "claims", f"role {role!r} has no pages")
    try:
        return principal_of(mapped)
    except (InvalidToken, KeyError) as error:
        raise Refused(403, "claims", str(error)) from error


_SETUP = threading.Lock()


def _city(
    request: Request, settings: SettingsDep, db: DatabaseDep
) -> tuple[CityProvider, Flows] | None:
    """The provider and the flows of this service, if the settings name a provider (made
    once per application, off the event loop: the flows make their table)."""
    if not settings.oidc_issuer or not settings.oidc_client_id:
        return None
    with _SETUP:
        city: tuple[CityProvider, Flows] | None = getattr(request.app.state, "oidc", None)
        if city is None:
            city = (CityProvider(settings), Flows(db))
            request.app.state.oidc = city
    return city


City = Annotated[tuple[CityProvider, Flows] | None, Depends(_city)]


def _refusal(request: Request, refused: Refused) -> Response:
    log.warning("OpenID Connect sign-in refused: %s", refused.detail)
    return render(request, "oidc_refused.html", status=refused.status,
                  reason=refused.reason, provider_error=refused.error)


@router.get("/signin/oidc")
def begin(request: Request, city: City, settings: SettingsDep) -> Response:
    """Off to the city's identity provider, with a new flow."""
    if city is None:
        return _refusal(request, Refused(404, "not-configured", "no provider configured"))
    provider, flows = city
    redirect_uri = settings.oidc_redirect_uri or str(request.url_for("oidc_callback"))
    try:
        provider.metadata()
    except Refused as refused:
        return _refusal(request, refused)
    state, browser, flow = flows.begin(redirect_uri)
    response = see_other(provider.authorization_url(state, flow))
    response.set_cookie(FLOW_COOKIE, browser, max_age=int(FLOW_LIFETIME.total_seconds()),
                        httponly=True, secure=True, samesite="lax", path=FLOW_PATH)
    return response


@router.get("/signin/oidc/callback", name="oidc_callback")
def finish(request: Request, city: City, settings: SettingsDep, sessions: WebSessionsDep,
           code: str | None = None, state: str | None = None,
           error: str | None = None, error_description: str | None = None,
           error_uri: str | None = None, iss: str | None = None,
           session_state: str | None = None) -> Response:
    """Back from the provider: the flow taken back, the code exchanged, the ID token
    verified, and a session for whom it names."""
    if city is None:
        return _refusal(request, Refused(404, "not-configured", "no provider configured"))
    provider, flows = city
    try:
        flow = flows.finish(state, request.cookies.get(FLOW_COOKIE))
        if error is not None:
            raise Refused(400, "provider", f"the provider said {error}: {error_description}",
                          error=error[:64])
        if iss is not None and iss != provider.issuer:
            raise Refused(400, "token", f"the response came from issuer {iss!r}")
        if not code or len(code) > 2048:
            raise Refused(400, "flow", "no code")
        claims = provider.verify(provider.exchange(code, flow), flow.nonce)
        principal = principal_from(claims, settings)
    except Refused as refused:
        return _refusal(request, refused)
    cookie, session = sessions.start(principal)
    response = see_other(HOMES[principal.role])
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, secure=True, samesite="lax",
                        path="/", expires=session.expires_at)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, secure=True, httponly=True,
                           samesite="lax")
    return response


@router.get("/signin/oidc/signout")
def sign_out_at_provider(request: Request, city: City, settings: SettingsDep) -> Response:
    """Off to the provider's end-session endpoint (RP-initiated logout), which asks the person
    to confirm and sends them back to /signin. No ID token goes along: it would be in a URL."""
    if city is None:
        return _refusal(request, Refused(404, "not-configured", "no provider configured"))
    provider, _ = city
    try:
        end_session = provider.metadata().end_session_endpoint
    except Refused as refused:
        return _refusal(request, refused)
    if end_session is None:
        return see_other("/signin")
    back = settings.oidc_post_logout_redirect_uri or str(request.url_for("signin"))
    query = urlencode({"client_id": provider.client_id, "post_logout_redirect_uri": back})
    return see_other(end_session + ("&" if "?" in end_session else "?") + query)


def _metadata_of(document: Mapping[str, Any], issuer: str) -> Metadata:
    if document.get("issuer") != issuer:
        raise Refused(502, "unreachable", f"discovery names issuer {document.get('issuer')!r}")
    endpoints = {name: document.get(name)
                 for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")}
    missing = [name for name, value in endpoints.items() if not isinstance(value, str)]
    if missing:
        raise Refused(502, "unreachable", f"discovery lacks {', '.join(missing)}")
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise Refused(502, "unreachable", "the provider does not take S256 challenges")
    offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    end_session = document.get("end_session_endpoint")
    return Metadata(
        issuer=issuer,
        authorization_endpoint=str(endpoints["authorization_endpoint"]),
        token_endpoint=str(endpoints["token_endpoint"]),
        jwks_uri=str(endpoints["jwks_uri"]),
        end_session_endpoint=end_session if isinstance(end_session, str) else None,
        algorithms=ALGORITHMS.intersection(offered),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _hashed(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
