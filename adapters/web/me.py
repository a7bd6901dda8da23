"""A resident's own pages: 我的证照 (the library as cards, upload, withdraw), 我的授权
(consents in plain words, granted after a preview, revoked) and 注销 (erasure). Each does
what its API route does, through the same service: ``POST /v1/me/documents``, ``DELETE
/v1/me/documents/{id}``, ``POST /v1/me/consents``, ``POST /v1/me/consents/{id}/revoke`` and
``POST /v1/me/erase``."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from contextlib import suppress
from datetime import date, datetime, time
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode

from babel.lists import format_list
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from adapters.formats import ACCEPTED_TYPES
from adapters.http.deps import (
    ClockDep,
    ConsentsDep,
    DocumentsDep,
    ResidentsDep,
    ViewsDep,
    caught_up,
)
from adapters.http.problems import Problem
from adapters.http.uploads import Gate, read_upload
from adapters.web.deps import WebSessionsDep
from adapters.web.i18n import LOCALES, language_of
from adapters.web.pages import (
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    catalogue_names,
    checked_form,
    error_page,
    render,
    see_other,
    signed_in,
    whole_number,
)
from adapters.web.sessions import Session
from policy.catalogue import Kind, catalogue
from projections.queries import Views
from vault.errors import InvalidInput, VaultError
from vault.inputs import MAX_TITLE, MAX_USES_LIMIT, ConsentRequest, parse_rfc3339
from vault.services.residents import Residents
from vault.workdays import CHINA

router = APIRouter(include_in_schema=False)
_CONSENT_FIELDS = ("department", "purpose", "until", "max_uses")
_DOC = "doc-"
"""A consent form's document types, one checkbox each: ``doc-<type>``."""
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")



def _words(request: Request) -> Callable[[Any], dict[str, str]]:
    """A consent's department, document types and purpose by their catalogue names, in the
    reader's language, the types joined as it joins them (户口簿和收入证明; A, B, and C)."""
    language = language_of(request.cookies.get(LANGUAGE_COOKIE))
    found = catalogue()

    def name(kind: Kind, identifier: str) -> str:
        entry = found.entries.get((kind, identifier))
        if entry is None:
            return identifier
        return entry.name_en if language == "en" else entry.name_zh

    def words(consent: Any) -> dict[str, str]:
        types = [name("doc_type", t) for t in consent.doc_types]
        return {"department": name("department", consent.department),
                "doc_types": format_list(types, locale=LOCALES[language]),
                "purpose": name("service", consent.purpose)}

    return words


def _resident(request: Request, residents: Residents) -> Session | Response:
    """The session of the resident signed in, if they may act; else the answer: not signed
    in, to the sign-in; erased, a page saying so (410, as the API answers them)."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    try:
        erased = residents.register(session.principal.subject).value.is_erased
    except VaultError as e:
        return error_page(request, session, e)
    if erased:
        return render(request, "me_erased.html", status=410, session=session)
    return session


async def _settled(request: Request) -> None:
    """Read your writes: the page shown next holds what was just written (bounded; a
    page a moment behind is better than none)."""
    with suppress(Problem):
        await caught_up(request)


def _same(given: str, session: Session) -> bool:
    return bool(given) and hmac.compare_digest(given, session.csrf)


@router.get("/me")
def my_library(request: Request, views: ViewsDep, residents: ResidentsDep) -> Response:
    """我的证照: the resident's library as cards, and a form to upload one more."""
    session = _resident(request, residents)
    if not isinstance(session, Session):
        return session
    return _library(request, session, views)


def _library(request: Request, session: Session, views: Views, status: int = 200,
             message: str | None = None) -> Response:
    documents = views.library(session.principal.subject, limit=200)
    names = catalogue_names()
    return render(request, "me.html", status=status, session=session, documents=documents,
                  issuers=names["departments"], doc_types=names["doc_types"],
                  accepted=",".join(ACCEPTED_TYPES), max_title=MAX_TITLE, message=message)


@router.post("/me/documents")
async def upload(
    request: Request, documents: DocumentsDep, views: ViewsDep, residents: ResidentsDep
) -> Response:
    """Upload a document, bounded as the API's upload is; the form's CSRF token opens it
    and is checked before anything after it is read."""
    session = await run_in_threadpool(_resident, request, residents)
    if not isinstance(session, Session):
        return session
    gate = Gate("csrf", partial(_same, session=session))
    try:
        received = await read_upload(request, request.app.state.limits.upload, gate=gate)
    except Problem as e:
        return await run_in_threadpool(_not_filed, request, session, views, e)
    try:
        await run_in_threadpool(
            lambda: documents.submit(session.principal.subject, received.stream(),
                                     received.details())
        )
    except (Problem, VaultError) as e:
        return await run_in_threadpool(_not_filed, request, session, views, e)
    finally:
        received.close()
    await _settled(request)
    return see_other("/me")


def _not_filed(
    request: Request, session: Session, views: Views, error: Problem | VaultError
) -> Response:
    """Why an upload was not filed: without its CSRF token, refused; a bound or a field
    it failed, said above the form again."""
    if isinstance(error, Problem):
        if error.status == 403:
            return render(request, "refused.html", status=403, session=session)
        return _library(request, session, views, status=error.status, message=error.detail)
    if isinstance(error, InvalidInput):
        return _library(request, session, views, status=422, message=str(error))
    return error_page(request, session, error)


@router.get("/me/documents/{document_id}/withdraw")
def withdrawing(
    request: Request, document_id: str, documents: DocumentsDep, residents: ResidentsDep
) -> Response:
    """Withdrawing a document: what it means, and the button that does it."""
    session = _resident(request, residents)
    if not isinstance(session, Session):
        return session
    try:
        document = documents.document(session.principal.subject, document_id)
    except VaultError as e:
        return error_page(request, session, e)
    return render(request, "me_withdraw.html", session=session, document=document,
                  **catalogue_names())


@router.post("/me/documents/{document_id}/withdraw")
async def withdraw(
    request: Request, document_id: str, documents: DocumentsDep, residents: ResidentsDep
) -> Response:
    session = await run_in_threadpool(_resident, request, residents)
    if not isinstance(session, Session):
        return session
    await checked_form(request, session)
    try:
        await run_in_threadpool(documents.withdraw, session.principal.subject, document_id)
    except VaultError as e:
        return error_page(request, session, e)
    await _settled(request)
    return see_other("/me")


@router.get("/me/consents")
def my_consents(
    request: Request, views: ViewsDep, residents: ResidentsDep, clock: ClockDep,
    purpose: str = "", department: str = "", until: str = "", max_uses: str = "",
    doc: Annotated[tuple[str, ...], Query()] = (),
) -> Response:
    """我的授权: every consent in plain words with its status, and a form to grant one
    (filled in from the query: from a preview the resident went back from, or for a
    purpose chosen, as the catalogue has the service)."""
    session = _resident(request, residents)
    if not isinstance(session, Session):
        return session
    asked = {"purpose": purpose, "department": department, "until": until,
             "max_uses": max_uses, **{_DOC + t: "on" for t in doc}}
    form = _filled({k: v for k, v in asked.items() if v})
    return _consents(request, session, views, clock.now(), form)


def _query(form: dict[str, str]) -> str:
    """A consent form as the query of the page that shows it again."""
    return urlencode([(k, v) for k, v in form.items() if k in _CONSENT_FIELDS]
                     + [("doc", k.removeprefix(_DOC)) for k in form if k.startswith(_DOC)])


def _filled(form: dict[str, str]) -> dict[str, str]:
    """A consent form for a purpose alone, filled in as the catalogue has the service: its
    department, and the document types of its materials."""
    found = catalogue()
    purpose = form.get("purpose", "")
    if not found.knows("service", purpose) or "department" in form or any(
        k.startswith(_DOC) for k in form
    ):
        return form
    service = found.service(purpose)
    return {**form, "department": service.department, **{_DOC + t: "on" for t in service.needs}}


def _consents(request: Request, session: Session, views: Views, now: datetime,
              form: dict[str, str], status: int = 200, message: str | None = None) -> Response:
    entries = views.consents(session.principal.subject, limit=200)
    return render(
        request, "me_consents.html", status=status, session=session,
        consents=[(c, c.status(now).value) for c in entries], form=form, message=message,
        chosen={k.removeprefix(_DOC) for k in form if k.startswith(_DOC)},
        today=now.astimezone(CHINA).date().isoformat(), words=_words(request), **catalogue_names(),
    )


def _consent_request(form: dict[str, str]) -> ConsentRequest:
    """The consent a form asks for: until the end of its day in China time, read as the
    API reads ``expires_at`` (:func:`parse_rfc3339`: a year from 1900 to 2199), its uses
    as the API bounds them, and the rest checked by the same :class:`ConsentRequest`."""
    until = form.get("until", "")
    try:
        if not _DAY.fullmatch(until):  # (not 20261231, not 2026-W53-1, which Python reads)
            raise ValueError(until)
        end = datetime.combine(date.fromisoformat(until), time(23, 59, 59), tzinfo=CHINA)
    except ValueError:
        raise InvalidInput("valid_until", "must be a date written YYYY-MM-DD") from None
    uses = form.get("max_uses", "").strip()
    return ConsentRequest(
        department=form.get("department", ""),
        doc_types=tuple(k.removeprefix(_DOC) for k in form if k.startswith(_DOC)),
        purpose=form.get("purpose", ""),
        valid_until=parse_rfc3339("valid_until", end.isoformat()),
        max_uses=whole_number("max_uses", uses, 1, MAX_USES_LIMIT) if uses else None,
    )


def _kept(form: dict[str, str]) -> dict[str, str]:
    """The consent form's own fields (not its CSRF token), to carry or show again."""
    return {k: v for k, v in form.items() if k in _CONSENT_FIELDS or k.startswith(_DOC)}


@router.post("/me/consents/preview")
async def preview_consent(
    request: Request, views: ViewsDep, residents: ResidentsDep, clock: ClockDep
) -> Response:
    """The consent in plain words, before the resident confirms it; nothing is written."""
    session = await run_in_threadpool(_resident, request, residents)
    if not isinstance(session, Session):
        return session
    form = await checked_form(request, session)
    try:
        asked = _consent_request(form)
    except InvalidInput as e:
        return await run_in_threadpool(
            _consents, request, session, views, clock.now(), _kept(form), 422, str(e))
    kept = _kept(form)
    return render(request, "me_consent_preview.html", session=session, consent=asked,
                  form=kept, back=_query(kept), words=_words(request), **catalogue_names())


@router.post("/me/consents")
async def grant_consent(
    request: Request, consents: ConsentsDep, views: ViewsDep, residents: ResidentsDep,
    clock: ClockDep,
) -> Response:
    """Grant the consent the preview showed."""
    session = await run_in_threadpool(_resident, request, residents)
    if not isinstance(session, Session):
        return session
    form = await checked_form(request, session)
    try:
        granted = await run_in_threadpool(
            consents.grant, session.principal.subject, _consent_request(form)
        )
    except InvalidInput as e:
        return await run_in_threadpool(
            _consents, request, session, views, clock.now(), _kept(form), 422, str(e))
    except VaultError as e:
        return error_page(request, session, e)
    await _settled(request)
    return see_other(f"/me/consents#consent-{granted.consent.id}")


@router.post("/me/consents/{consent_id}/revoke")
async def revoke_consent(
    request: Request, consent_id: str, consents: ConsentsDep, residents: ResidentsDep
) -> Response:
    """Revoke a consent: once this answers, no fetch under it succeeds."""
    session = await run_in_threadpool(_resident, request, residents)
    if not isinstance(session, Session):
        return session
    await checked_form(request, session)
    try:
        await run_in_threadpool(consents.revoke, session.principal.subject, consent_id)
    except VaultError as e:
        return error_page(request, session, e)
    await _settled(request)
    return see_other(f"/me/consents#consent-{consent_id}")


@router.get("/me/erase")
def erasing(request: Request, residents: ResidentsDep) -> Response:
    """注销: what erasure does, in plain words, and the word to type to do it."""
    session = _resident(request, residents)
    if not isinstance(session, Session):
        return session
    return render(request, "me_erase.html", session=session)


@router.post("/me/erase")
async def erase(
    request: Request, residents: ResidentsDep, sessions: WebSessionsDep
) -> Response:
    """Erase the resident (crypto-shredding) once they typed their resident id; the
    session ends with it."""
    session = await run_in_threadpool(_resident, request, residents)
    if not isinstance(session, Session):
        return session
    form = await checked_form(request, session)
    resident_id = session.principal.subject
    if form.get("confirm", "").strip() != resident_id:
        return render(request, "me_erase.html", status=422, session=session, wrong=True)
    try:
        await run_in_threadpool(residents.erase, resident_id)
    except VaultError as e:
        return error_page(request, session, e)
    sessions.end(request.cookies.get(SESSION_COOKIE))
    response = render(request, "me_erased.html", session=None, done=True)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response
