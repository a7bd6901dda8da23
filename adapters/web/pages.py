"""The pages: signing in and out, and each actor's pages, rendered on the server from the
same services the API uses (no second path to the data).

Sessions are HttpOnly, Secure, SameSite=Lax cookies naming a session kept on the server
(:mod:`adapters.web.sessions`); every form that changes anything carries the session's CSRF
token (signing in, before there is a session, a token of its own in a short-lived cookie).
Tokens never reach the browser. Every page says where it may load from: only this origin.
"""

from __future__ import annotations

import hmac
import secrets
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic_core import PydanticCustomError

from adapters.http.fields import MAX_WHOLE, WholeBetween
from adapters.http.problems import status_of
from adapters.web.deps import SettingsDep
from adapters.web.i18n import Language, day, language_of, translations, when
from adapters.web.sessions import Session, WebSessions
from keys.tokens import Principal, Role
from policy.catalogue import catalogue
from vault.errors import InvalidInput, VaultError

router = APIRouter(include_in_schema=False)
SESSION_COOKIE = "cv_session"
SIGNIN_COOKIE = "cv_signin"
LANGUAGE_COOKIE = "cv_lang"
_TEMPLATES = Path(__file__).parent / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Persona:
    """Someone to sign in as in the demo."""

    def __init__(self, key: str, name: str, role: Role, subject: str,
                 department: str | None = None, unit: str | None = None) -> None:
        self.key, self.name, self.role, self.subject = key, name, role, subject
        self.department, self.unit = department, unit

    def principal(self) -> Principal:
        return Principal(subject=self.subject, role=self.role, department=self.department,
                         token_id=None, unit=self.unit)


PERSONAS = (
    Persona("zhang-wei", "张伟", "resident", "zhang-wei"),
    Persona("clerk-wang", "王芳（和平里社区窗口）", "clerk", "clerk-wang", unit="heping-lane"),
    Persona("officer-li", "李明（民政局）", "officer", "officer-li", department="civil-affairs"),
    Persona("supervisor-zhao", "赵刚（东城区督查）", "supervisor", "supervisor-zhao",
            unit="dongcheng"),
    Persona("auditor-sun", "孙审计", "auditor", "auditor-sun"),
)
"""The demo's people to sign in as: a resident, a clerk at a community window, a 民政局
reviewer, a district supervisor and an auditor."""
HOMES: dict[str, str] = {"resident": "/me", "clerk": "/window", "officer": "/work",
                         "supervisor": "/supervision", "auditor": "/audit"}
NAVIGATION: dict[str, tuple[tuple[str, str], ...]] = {
    "resident": (("/me", "我的证照"), ("/me/consents", "我的授权"),
                 ("/me/applications", "我的办件"), ("/me/access", "谁用了我的材料")),
    "clerk": (("/window", "一口受理"),),
    "officer": (("/work", "待办件"), ("/work/fetch", "调阅材料")),
    "supervisor": (("/supervision", "绩效监督"),),
    "auditor": (("/audit", "审计"),),
}
"""Each actor's pages, as the header lists them (the words are translated in the page)."""


def current_tab(path: str, role: str | None) -> str | None:
    """The header's tab a page belongs to: the longest of the role's tabs the path is, or
    lies under (so an application's page lights up its list's tab)."""
    under = [href for href, _ in NAVIGATION.get(role or "", ())
             if path == href or path.startswith(href.rstrip("/") + "/")]
    return max(under, key=len, default=None)


@cache
def _environment(language: Language) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
    )
    environment.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return environment


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    language = language_of(request.cookies.get(LANGUAGE_COOKIE))
    session = context.setdefault("session", None)
    fresh = None
    if session is not None:
        context.setdefault("csrf", session.csrf)
    elif context.get("csrf") is None:
        # A page for someone not signed in (an error, a refusal) still lets them choose
        # a language: with the sign-in's own token, as the sign-in page does.
        fresh = context["csrf"] = (request.cookies.get(SIGNIN_COOKIE)
                                   or secrets.token_urlsafe(24))
    context.setdefault("here", _here(request))
    page = _environment(language).get_template(template).render(
        language=language, path=request.url.path, navigation=NAVIGATION,
        tab=current_tab(request.url.path, session.principal.role if session else None),
        when=lambda moment: when(moment, language), day=lambda moment: day(moment, language),
        **context,
    )
    response = HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)
    if fresh is not None:
        _signin_cookie(response, fresh)
    return response


def _signin_cookie(response: Response, token: str) -> None:
    response.set_cookie(SIGNIN_COOKIE, token, max_age=600, httponly=True, secure=True,
                        samesite="strict", path="/")


def _here(request: Request) -> str:
    """The page with its query (a drilled-down unit, a period), for the language toggle to
    come back to; the path alone if the query is long."""
    query = request.url.query
    return f"{request.url.path}?{query}" if query and len(query) <= 1000 else request.url.path


def _sessions(request: Request) -> WebSessions:
    sessions: WebSessions = request.app.state.web_sessions
    return sessions


def _session(request: Request) -> Session | None:
    return _sessions(request).find(request.cookies.get(SESSION_COOKIE))


def _see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


FORM_BYTES = 16 * 1024
"""The most a page's form may send: a few short fields."""


async def read_form(request: Request) -> dict[str, str]:
    """A page's form: a few short URL-encoded text fields, read up to :data:`FORM_BYTES`
    (anything else reads as an empty form, which no check accepts)."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return {}
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_BYTES:
            return {}
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def whole_number(field: str, text: str, minimum: int = 0, maximum: int = MAX_WHOLE) -> int:
    """A whole number typed into a page (a form's field, a query's), read as the API reads
    one in a query (:class:`WholeBetween`): ASCII digits only — not ``²`` or ``١٢``, which
    ``str.isdigit`` takes and ``int`` chokes on or reads — at most 18 of them, from
    ``minimum`` to ``maximum``; :class:`InvalidInput` naming ``field`` (the page's 422)
    otherwise."""
    try:
        number = WholeBetween(minimum, maximum).check(text)
    except PydanticCustomError as e:
        raise InvalidInput(field, e.message()) from None
    if number is None:  # (only for a value left out, which text never is)
        raise InvalidInput(field, "is missing")
    return number


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


def _refused(request: Request) -> HTMLResponse:
    return _render(request, "refused.html", status=403)


def catalogue_names() -> dict[str, Any]:
    """What the templates name things by: the catalogue's services, document types,
    departments, units and tracks, each by id (each has ``name_zh`` and ``name_en``)."""
    found = catalogue()
    return {"services": {s.id: s for s in found.services()},
            "doc_types": {t.id: t for t in found.doc_types()},
            "departments": {d.id: d for d in found.of_kind("department")},
            "units": {u.id: u for u in found.of_kind("unit")},
            "tracks": {t.id: t for t in found.of_kind("track")}}


def signed_in(request: Request, role: Role) -> Session | None:
    """The session of someone signed in with ``role``, if that is who asks."""
    session = _session(request)
    return session if session is not None and session.principal.role == role else None


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page (for the pages of each actor, in their own modules)."""
    return _render(request, template, status, **context)


def error_page(request: Request, session: Session, error: VaultError) -> HTMLResponse:
    """What went wrong, in words, with the status the API gives it."""
    return _render(request, "error.html", status=status_of(error), session=session,
                   message=str(error), code=error.code)


class FormRefused(Exception):
    """A state-changing form without the session's CSRF token: answered with the refusal
    page (403), nothing done (:func:`install_page_handlers`)."""

    def __init__(self, session: Session) -> None:
        super().__init__("the form does not carry the session's CSRF token")
        self.session = session


async def checked_form(request: Request, session: Session) -> dict[str, str]:
    """A state-changing form of the session's; :class:`FormRefused` unless it carries the
    session's CSRF token."""
    form = await read_form(request)
    if not _same(form.get("csrf"), session.csrf):
        raise FormRefused(session)
    return form


class CrossSiteRefused(Exception):
    """A request another site made the browser send, to a page that records something:
    answered with the refusal page (403), nothing judged or recorded."""


ALLOWED_SITES = ("same-origin", "none")
"""Who may make the browser ask for a page that records something, as its
``Sec-Fetch-Site`` tells: a page of ours, or the person (an address typed, a bookmark)."""


def not_cross_site(request: Request) -> None:
    """For a GET page that records something (a fetch judged, charged and logged in the
    officer's name): :class:`CrossSiteRefused` when the browser says another site (or a
    sibling subdomain) made the request. The session cookie is SameSite=Lax, which a
    link on any site still carries, and a GET carries no CSRF token: Fetch Metadata is
    what tells. A request without ``Sec-Fetch-Site`` (a client that is no browser, a
    browser older than Fetch Metadata) is let through."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in ALLOWED_SITES:
        raise CrossSiteRefused()


SameOriginOnly = Depends(not_cross_site)
"""Declared on each GET page that records something (``dependencies=[SameOriginOnly]``):
checked before anything else the page does."""


def install_page_handlers(app: FastAPI) -> None:
    """Every page's refused form, and every cross-site request to a page that records,
    answered alike: the refusal page, 403."""

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, FormRefused)
        return render(request, "refused.html", status=403, session=error.session)

    async def cross_site(request: Request, error: Exception) -> Response:
        return render(request, "refused.html", status=403, session=_session(request),
                      cross_site=True)

    app.add_exception_handler(FormRefused, refused)
    app.add_exception_handler(CrossSiteRefused, cross_site)


def see_other(location: str) -> RedirectResponse:
    return _see_other(location)


@router.get("/")
def home(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _see_other("/signin")
    return _see_other(HOMES.get(session.principal.role, "/signin"))


@router.get("/signin")
def signin(request: Request, settings: SettingsDep) -> Response:
    """Sign in: the demo's people to pick from (under ``--demo``); in production the
    city's identity provider."""
    token = secrets.token_urlsafe(24)
    response = _render(request, "signin.html", personas=PERSONAS if settings.demo else (),
                       csrf=token, oidc=settings.oidc_issuer is not None)
    _signin_cookie(response, token)
    return response


@router.post("/signin/persona")
async def signin_as(request: Request, settings: SettingsDep) -> Response:
    if not settings.demo:
        return _refused(request)
    form = await read_form(request)
    if not _same(form.get("csrf"), request.cookies.get(SIGNIN_COOKIE)):
        return _refused(request)
    persona = next((p for p in PERSONAS if p.key == form.get("persona")), None)
    if persona is None:
        return _refused(request)
    cookie, session = _sessions(request).start(persona.principal())
    response = _see_other(HOMES[persona.role])
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, secure=True, samesite="lax",
                        path="/", expires=session.expires_at)
    response.delete_cookie(SIGNIN_COOKIE, path="/")
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    session = _session(request)
    form = await read_form(request)
    if session is not None and not _same(form.get("csrf"), session.csrf):
        return _refused(request)
    _sessions(request).end(request.cookies.get(SESSION_COOKIE))
    response = _see_other("/signin")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


@router.post("/language")
async def choose_language(request: Request) -> Response:
    """The language toggle: remembered in a cookie; back to the page it was pressed on."""
    form = await read_form(request)
    session = _session(request)
    expected = session.csrf if session is not None else request.cookies.get(SIGNIN_COOKIE)
    if not _same(form.get("csrf"), expected):
        return _refused(request)
    back = form.get("back", "/")
    if not back.startswith("/") or back.startswith("//") or "\\" in back:
        back = "/"
    response = _see_other(back)
    language = "en" if form.get("language") == "en" else "zh"
    response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, httponly=True,
                        secure=True, samesite="lax", path="/")
    return response
