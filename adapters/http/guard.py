"""The door of the API: who is calling, how often, and how much they may send — decided
before any byte of a request's body is read.

Every ``/v1`` request is authenticated here from its ``Authorization`` header alone (the
routes then take the principal from the request's state); a failure is a 401 at once,
and failures are counted per client address. A caller's fetches and writes are counted
per principal; over a limit is a 429 with ``Retry-After`` and ``RateLimit-*`` headers.
A body larger than its route allows is a 413: at once when ``Content-Length`` says so,
or as soon as the streamed bytes pass the limit. The counting is the ``limits`` library's
sliding window (two counters a key: constant cost however many requests), kept in each
process's memory (with several workers, each counts apart).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from limits import RateLimitItem, parse
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http.problems import problem_response
from adapters.http.rate_storage import SweptMemoryStorage
from adapters.http.strict_json import NotStrictJson, is_json_media, loads_strict
from adapters.http.uploads import UploadBounds
from keys.tokens import InvalidToken, Principal, TokenVerifier

_FETCH = re.compile(
    r"/v1/residents/[^/]+/documents/[^/]+/content|/v1/applications/[^/]+/materials/[^/]+/content"
)
_UPLOADS = (
    re.compile(r"/v1/me/documents"),
    re.compile(r"/v1/residents/[^/]+/documents"),
    re.compile(r"/v1/me/applications/[^/]+/supplements"),
)
_PAGE_FETCH = re.compile(
    r"/work/applications/[^/]+/materials/[^/]+|/work/fetch/[^/]+/[^/]+"
)
"""The pages that fetch a resident's document (each a recorded access, as the API's)."""
_GRADES = "/v1/credit/grades"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""What an upload's body may hold besides the file: its form fields and part headers."""


@dataclass(frozen=True)
class Limits:
    """What a caller may send, and how often (``limits`` notation: ``"600/minute"``)."""

    fetches: str
    writes: str
    failed_authentications: str
    json_bytes: int
    grade_push_bytes: int
    upload: UploadBounds


def counted(method: str, path: str) -> Literal["fetch", "write"] | None:
    """Which rate limit a request (or a route, by its path template) counts against: the
    API's and the pages' alike."""
    if method == "GET" and (_FETCH.fullmatch(path) or _PAGE_FETCH.fullmatch(path)):
        return "fetch"
    if method in _WRITES:
        return "write"
    return None


class _TooLarge(Exception):
    def __init__(self, cap: int) -> None:
        super().__init__(f"the body is over the {cap}-byte limit for this route")
        self.cap = cap


SignedIn = Callable[[str | None], Awaitable[Principal | None]]
"""Who a page's session cookie names, if anyone."""


class Guard:
    """ASGI middleware: authenticate, count, and bound every ``/v1`` request; count the
    pages' writes and fetches against the same limits, under the signed-in principal's
    name (or, before anyone has signed in, the client's address)."""

    def __init__(
        self, app: ASGIApp, *, verifier: TokenVerifier, limits: Limits,
        signed_in: SignedIn | None = None, session_cookie: str = "cv_session",
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.limits = limits
        self.signed_in = signed_in
        self.session_cookie = session_cookie
        self._window = SlidingWindowCounterRateLimiter(SweptMemoryStorage())
        self._fetches = parse(limits.fetches)
        self._writes = parse(limits.writes)
        self._failures = parse(limits.failed_authentications)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith("/v1/"):
            await self._page(scope, receive, send)
            return
        principal = self._authenticate(scope)
        if not isinstance(principal, Principal):
            await self._refuse_authentication(scope, receive, send, principal)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["role"] = principal.role
        counted = self._counted(scope, principal)
        headers: dict[str, str] = {}
        if counted is not None:
            item, key = counted
            if not self._window.hit(item, key):
                await self._too_many(scope, receive, send, item, key)
                return
            headers = self._rate_headers(item, key)
        cap = self._cap(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            response = problem_response(
                413 if declared.isdigit() else 400,
                "too-large" if declared.isdigit() else "malformed-request",
                "Payload too large" if declared.isdigit() else "Malformed request",
                f"the body is over the {cap}-byte limit for this route"
                if declared.isdigit() else "Content-Length is not a number",
            )
            await response(scope, receive, send)
            return
        await self._bounded(scope, receive, send, cap, headers)

    async def _page(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A page's request: its writes and fetches counted as the API's are (the pages'
        own code reads their bodies, bounded)."""
        kind = counted(scope["method"], scope["path"])
        if kind is None or self.signed_in is None:
            await self.app(scope, receive, send)
            return
        cookies = cookie_parser(_header(scope, b"cookie") or "")
        principal = await self.signed_in(cookies.get(self.session_cookie))
        if principal is not None:
            who = f"{principal.role}:{principal.department or ''}:{principal.subject}"
        else:
            client = scope.get("client")
            who = f"address:{client[0] if client else 'unknown'}"
        item = self._fetches if kind == "fetch" else self._writes
        if not self._window.hit(item, f"{kind}:{who}"):
            headers = self._rate_headers(item, f"{kind}:{who}")
            headers["Retry-After"] = str(max(1, int(headers["RateLimit-Reset"])))
            page = HTMLResponse(_TOO_MANY_PAGE, status_code=429, headers=headers)
            await page(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope) -> Principal | tuple[str, str, str]:
        """The principal of the bearer token, or (code, detail, WWW-Authenticate) of why
        there is none."""
        authorization = _header(scope, b"authorization")
        if not authorization:
            return "missing-token", "a bearer token is required", "Bearer"
        scheme, _, token = authorization.partition(" ")
        invalid = 'Bearer error="invalid_token"'
        if scheme.lower() != "bearer" or not token.strip():
            return "invalid-token", "use the Bearer scheme", invalid
        try:
            return self.verifier.verify(token.strip())
        except InvalidToken:
            return "invalid-token", "the token is not valid", invalid

    async def _refuse_authentication(
        self, scope: Scope, receive: Receive, send: Send, why: tuple[str, str, str]
    ) -> None:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if not self._window.hit(self._failures, "failed-authentication", address):
            await self._too_many(scope, receive, send, self._failures,
                                 "failed-authentication", address)
            return
        code, detail, challenge = why
        response = problem_response(
            401, code, "Not authenticated", detail, headers={"WWW-Authenticate": challenge}
        )
        await response(scope, receive, send)

    def _counted(self, scope: Scope, principal: Principal) -> tuple[RateLimitItem, str] | None:
        """Which limit a request counts against, and under whose name."""
        who = f"{principal.role}:{principal.department or ''}:{principal.subject}"
        kind = counted(scope["method"], scope["path"])
        if kind is None:
            return None
        return (self._fetches if kind == "fetch" else self._writes), f"{kind}:{who}"

    def _cap(self, scope: Scope) -> int:
        path = scope["path"]
        if scope["method"] == "POST" and any(u.fullmatch(path) for u in _UPLOADS):
            return self.limits.upload.body_bytes
        if path == _GRADES:
            return self.limits.grade_push_bytes
        return self.limits.json_bytes

    def _rate_headers(self, item: RateLimitItem, *keys: str) -> dict[str, str]:
        stats = self._window.get_window_stats(item, *keys)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(max(0, stats.remaining)),
            "RateLimit-Reset": str(reset),
        }

    async def _too_many(
        self, scope: Scope, receive: Receive, send: Send, item: RateLimitItem, *keys: str
    ) -> None:
        headers = self._rate_headers(item, *keys)
        headers["Retry-After"] = str(max(1, int(headers["RateLimit-Reset"])))
        response = problem_response(
            429, "too-many-requests", "Too many requests",
            f"at most {item.amount} per {item.GRANULARITY.name}; try again later",
            headers=headers,
        )
        await response(scope, receive, send)

    async def _bounded(
        self, scope: Scope, receive: Receive, send: Send, cap: int, headers: dict[str, str]
    ) -> None:
        """Run the app with the body bounded, and the rate headers added to the response.
        An upload streams through, counted as it goes (its parser reads it piece by piece);
        any other body, small by its bound, is read whole first (the framework would read it
        whole anyway, and it turns every error of a body read into a 400)."""
        received = 0
        started = False
        if cap != self.limits.upload.body_bytes:
            body = await _read_bounded(receive, cap)
            if body is None:
                response = problem_response(
                    413, "too-large", "Payload too large",
                    f"the body is over the {cap}-byte limit for this route",
                )
                await response(scope, receive, send)
                return
            refusal = _json_refusal(scope, body)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = _replaying(body, receive)

        async def counting() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise _TooLarge(cap)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if headers:
                    message["headers"] = [
                        *message.get("headers", []),
                        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                    ]
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except _TooLarge as e:
            if started:
                raise
            response = problem_response(413, "too-large", "Payload too large", str(e))
            await response(scope, receive, send)


_TOO_MANY_PAGE = (
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
    "<title>请求过于频繁 · civicvault</title></head><body><main>"
    "<h1>请求过于频繁</h1><p>请稍后再试。</p>"
    '<p lang="en">Too many requests: please try again in a moment.</p>'
    "</main></body></html>"
)


async def _read_bounded(receive: Receive, cap: int) -> bytes | None:
    """The whole body, or None as soon as it is over ``cap`` bytes."""
    pieces: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        piece = message.get("body", b"")
        size += len(piece)
        if size > cap:
            return None
        pieces.append(piece)
        if not message.get("more_body", False):
            break
    return b"".join(pieces)


def _routed(scope: Scope) -> bool:
    """Whether some route of the app answers this method at this path (else the router
    answers 404 or 405, whatever the body)."""
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", ())
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


def _json_refusal(scope: Scope, body: bytes) -> JSONResponse | None:
    """A body other than an upload is JSON, said so, and strict
    (:func:`adapters.http.strict_json.loads_strict`)."""
    if not body or not _routed(scope):
        return None
    if not is_json_media(_header(scope, b"content-type")):
        return problem_response(
            415, "unsupported-media-type", "Unsupported media type",
            "a request body here must be application/json",
        )
    try:
        loads_strict(body)
    except NotStrictJson as e:
        problem = str(e)
    except ValueError:  # not JSON at all: the framework names where it breaks
        return None
    else:
        return None
    return problem_response(
        422, "invalid-input", "Invalid input", f"body: {problem}", field="body",
        errors=[{"field": "body", "problem": problem}],
    )


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read already, then whatever the connection says."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def limits_from(settings: Any) -> Limits:
    """The limits the settings name."""
    return Limits(
        fetches=settings.rate_limit_fetches,
        writes=settings.rate_limit_writes,
        failed_authentications=settings.rate_limit_failed_authentications,
        json_bytes=settings.max_json_bytes,
        grade_push_bytes=settings.max_grade_push_bytes,
        upload=UploadBounds(settings.max_document_bytes, settings.max_form_field_bytes),
    )

