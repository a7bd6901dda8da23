"""我的办件: a resident's applications, newest first, each with its status, clock and what is
missing; one application's history, materials and form, and what the resident may do with
it — supply what a reviewer asked for or what it was accepted without (from the library,
or a new upload), sign a commitment in place of the latter (告知承诺), withdraw, rate;
a one-use code (办事码) to show at a window; and applying online. The same services and
rules as the API's ``/v1/me/applications`` routes."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from eventsourcing.domain import Aggregate
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from adapters.http.deps import (
    ApplicationsDep,
    CaughtUp,
    ClockDep,
    DocumentsDep,
    ViewsDep,
)
from adapters.http.problems import Problem
from adapters.http.uploads import Gate, read_upload
from adapters.web.deps import WaitForViews
from adapters.web.pages import (
    catalogue_names,
    checked_form,
    error_page,
    render,
    see_other,
    signed_in,
    whole_number,
)
from adapters.web.sessions import Session
from policy.catalogue import catalogue
from projections.queries import Views
from vault.errors import AlreadyRated, ApplicationClosed, InvalidInput, VaultError
from vault.services.applications import (
    Applications,
    MadeCode,
    Viewer,
    commitment_statement,
)
from vault.services.documents import Documents

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Happened:
    """One entry of an application's history, as the resident reads it."""

    kind: str
    """accepted, approve, return, reject, supplied, committed, withdrawn or rated."""
    at: datetime
    department: str | None = None
    reason: str | None = None
    asked_for: tuple[str, ...] = ()
    doc_type: str | None = None
    source: str | None = None
    score: int | None = None
    comment: str | None = None
    result_document_id: str | None = None


def history_of(events: list[Aggregate.Event]) -> list[Happened]:
    """The application's events in the words of its page, oldest first."""
    kinds = {"Accepted": "accepted", "Supplied": "supplied", "MissingSupplied": "supplied",
             "MissingCommitted": "committed", "Withdrawn": "withdrawn", "Rated": "rated"}
    entries: list[Happened] = []
    for event in events:
        name = type(event).__name__
        values: dict[str, Any] = vars(event)
        kind = values["decision"] if name == "Decided" else kinds.get(name)
        if kind is None:
            continue
        entries.append(Happened(
            kind=kind, at=values.get("at") or values.get("accepted_at") or event.timestamp,
            department=values.get("department"), reason=values.get("reason"),
            asked_for=tuple(values.get("asked_for") or ()), doc_type=values.get("doc_type"),
            source=values.get("source"), score=values.get("score"),
            comment=values.get("comment"),
            result_document_id=values.get("result_document_id"),
        ))
    return entries



def _refused(request: Request, session: Session) -> Response:
    return render(request, "refused.html", status=403, session=session)


@router.get("/me/applications")
def my_applications(
    request: Request, applications: ApplicationsDep, views: ViewsDep, before: str = ""
) -> Response:
    """我的办件: newest first, each with its status, clock, due date and what is missing;
    a page at a time (``before``: where the page before ended)."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    try:
        place = whole_number("before", before) if before else None
    except InvalidInput as e:
        return error_page(request, session, e)
    return _list(request, session, applications, views, before=place)


PAGE = 20
"""Applications a page of the list shows."""


def _list(
    request: Request, session: Session, applications: Applications, views: Views,
    made: MadeCode | None = None, made_for: str | None = None, before: int | None = None,
) -> Response:
    entries = views.applications(session.principal.subject, limit=PAGE + 1, before=before)
    shown = [applications.application(e.application_id) for e in entries[:PAGE]]
    return render(request, "me_applications.html", session=session,
                  rows=[(a, applications.timing(a)) for a in shown], made=made,
                  made_for=made_for, earlier=entries[PAGE - 1].position
                  if len(entries) > PAGE else None, **catalogue_names())


@router.get("/me/applications/new")
def new_application(
    request: Request, applications: ApplicationsDep, service_id: str = ""
) -> Response:
    """网上申请: pick a service and see what applying would take now, by the rules of
    applying (``Applications.preview``): the materials the library holds (taken), the
    others with whether 容缺 or 告知承诺 may stand in — the commitment's words shown before
    signing it — and the form as it would be filled (反填)."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    try:
        return _new(request, session, applications, service_id)
    except VaultError as e:
        return error_page(request, session, e)


def _new(
    request: Request, session: Session, applications: Applications, service_id: str,
    status: int = 200, message: str | None = None, chosen: dict[str, str] | None = None,
) -> Response:
    found = catalogue()
    preview = None
    if found.knows("service", service_id):
        preview = applications.preview(session.principal.subject, service_id)
    return render(
        request, "me_application_new.html", status=status, session=session,
        service=found.service(service_id) if preview else None, preview=preview,
        statements={t: commitment_statement(t) for t in (
            found.service(service_id).needs if preview else ())},
        message=message, chosen=chosen or {}, **catalogue_names(),
    )


@router.post("/me/applications")
async def apply_online(
    request: Request, applications: ApplicationsDep, caught_up: CaughtUp,
    wait_for_views: WaitForViews,
) -> Response:
    """Apply online (as POST /v1/me/applications): each material from the library where
    the tracks allow, those named 容缺 as missing, those named 告知承诺 by the signed
    commitment shown in the page; the fields typed in, the others filled (反填)."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    form = await checked_form(request, session)
    service_id = form.get("service_id", "")
    how = {k.removeprefix("how-"): v for k, v in form.items() if k.startswith("how-")}
    typed = {k.removeprefix("form-"): v.strip() for k, v in form.items()
             if k.startswith("form-") and v.strip()}
    try:
        accepted = await run_in_threadpool(partial(
            applications.apply, session.principal.subject, service_id,
            missing=tuple(t for t, v in how.items() if v == "missing"),
            commitments=tuple(t for t, v in how.items() if v == "commitment"), form=typed,
        ))
    except InvalidInput as e:
        try:
            return await run_in_threadpool(partial(
                _new, request, session, applications, service_id, status=422,
                message=str(e), chosen=form))
        except VaultError:
            return error_page(request, session, e)
    except VaultError as e:
        return error_page(request, session, e)
    if accepted.position is not None:  # so that the list shows it when the page returns
        await run_in_threadpool(wait_for_views, accepted.position)
    return see_other(f"/me/applications/{accepted.application.id}")


@router.post("/me/applications/code")
async def make_code(
    request: Request, applications: ApplicationsDep, views: ViewsDep
) -> Response:
    """办事码: a one-use code, valid ten minutes, that lets a window clerk accept one
    application for the chosen service (as POST /v1/me/authorization-codes)."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    form = await checked_form(request, session)
    service_id = form.get("service_id", "")
    try:
        made = await run_in_threadpool(applications.authorization_code,
                                       session.principal.subject, service_id)
    except VaultError as e:
        return error_page(request, session, e)
    return await run_in_threadpool(_list, request, session, applications, views, made,
                                   service_id)


@router.get("/me/applications/{application_id}")
def application_page(
    request: Request, application_id: str, applications: ApplicationsDep, views: ViewsDep,
    clock: ClockDep,
) -> Response:
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    try:
        return _application(request, session, applications, views, clock.now(), application_id)
    except VaultError as e:
        return error_page(request, session, e)


def _application(
    request: Request, session: Session, applications: Applications, views: Views,
    now: datetime, application_id: str, status: int = 200, notice: str | None = None,
    message: str | None = None,
) -> Response:
    viewer = Viewer("resident", session.principal.subject)
    application = applications.seen_by(viewer, application_id)
    history = history_of(applications.history(viewer, application_id))
    # What the resident may supply: what a reviewer asked for (补正), and, while it is
    # open, what it was accepted without (容缺).
    wanted = tuple(dict.fromkeys(
        application.asked_for
        + (application.still_missing if application.status.is_open else ())
    ))
    held = views.library(session.principal.subject, limit=200, doc_types=set(wanted),
                         unexpired_at=now) if wanted else []
    found = catalogue()
    fields = ({f.field: f for f in found.service(application.service_id).form}
              if found.knows("service", application.service_id) else {})
    return render(
        request, "me_application.html", status=status, session=session,
        application=application, timing=applications.timing(application), history=history,
        wanted=wanted, library={t: [d for d in held if d.doc_type == t] for t in wanted},
        committable=applications.committable(application), fields=fields, notice=notice,
        message=message, **catalogue_names(),
    )


@router.post("/me/applications/{application_id}/supplements")
async def supply(
    request: Request, application_id: str, applications: ApplicationsDep,
    documents: DocumentsDep, views: ViewsDep, clock: ClockDep,
) -> Response:
    """补正 (or 容缺 made good): supply a material a reviewer asked for, or one the
    application was accepted without — a document of the library (a form of
    ``doc_type`` and ``document_id``) or a new file (multipart, bounded as the API bounds
    an upload; it joins the library)."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    resident = session.principal.subject
    again = partial(_application, request, session, applications, views, clock.now(),
                    application_id)
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        if media == "multipart/form-data":
            chosen = await _uploaded(request, session, application_id, applications, documents)
            if chosen is None:
                return _refused(request, session)
            doc_type, document_id = chosen
        else:
            form = await checked_form(request, session)
            await run_in_threadpool(applications.seen_by, Viewer("resident", resident),
                                    application_id)
            doc_type, document_id = form.get("doc_type", ""), form.get("document_id", "")
        await run_in_threadpool(applications.supply, resident, application_id, doc_type,
                                document_id)
    except (Problem, VaultError) as e:
        return await _failed(request, session, again, e)
    return see_other(f"/me/applications/{application_id}")


async def _failed(
    request: Request, session: Session, again: Callable[..., Response],
    error: Problem | VaultError,
) -> Response:
    """What the resident sees when an action is refused: the application's page again with
    why (nothing changed), or, for what has no page to go back to, the error in words."""
    if isinstance(error, Problem):
        return render(request, "error.html", status=error.status, session=session,
                      message=error.detail, code=error.code)
    shown: dict[str, Any] = {}
    if isinstance(error, AlreadyRated):
        shown = {"status": 409, "notice": "rated-already"}
    elif isinstance(error, ApplicationClosed | InvalidInput):
        shown = {"status": 422 if isinstance(error, InvalidInput) else 409,
                 "message": str(error)}
    if shown:
        try:
            return await run_in_threadpool(partial(again, **shown))
        except VaultError:  # (a malformed id, say: no page to go back to)
            pass
    return error_page(request, session, error)


async def _uploaded(
    request: Request, session: Session, application_id: str, applications: Applications,
    documents: Documents,
) -> tuple[str, str] | None:
    """A new file for the library, read as the API reads an upload (bounded the same way),
    behind the page's CSRF token as its first part; None (nothing read further, nothing
    filed) without the session's token."""
    resident = session.principal.subject
    await run_in_threadpool(applications.seen_by, Viewer("resident", resident), application_id)
    gate = Gate("csrf", lambda token: hmac.compare_digest(token, session.csrf))
    try:
        upload = await read_upload(request, request.app.state.limits.upload, gate=gate)
    except Problem as e:
        if e.code == "csrf-refused":
            return None
        raise
    try:
        filed = await run_in_threadpool(
            lambda: documents.submit(resident, upload.stream(), upload.details())
        )
    finally:
        upload.close()
    return filed.value.doc_type, str(filed.value.id)


@router.post("/me/applications/{application_id}/commitments")
async def commit(
    request: Request, application_id: str, applications: ApplicationsDep, views: ViewsDep,
    clock: ClockDep,
) -> Response:
    """告知承诺: sign the commitment shown on the page in place of a material the
    application was accepted without (容缺) — a form of ``doc_type``; the same service
    and rule as the API's commitments route."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    form = await checked_form(request, session)
    again = partial(_application, request, session, applications, views, clock.now(),
                    application_id)
    try:
        await run_in_threadpool(applications.commit, session.principal.subject,
                                application_id, form.get("doc_type", ""))
    except VaultError as e:
        return await _failed(request, session, again, e)
    return see_other(f"/me/applications/{application_id}")


@router.get("/me/applications/{application_id}/withdraw")
def confirm_withdrawal(
    request: Request, application_id: str, applications: ApplicationsDep
) -> Response:
    """Withdrawing asks first."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    try:
        application = applications.seen_by(Viewer("resident", session.principal.subject),
                                           application_id)
    except VaultError as e:
        return error_page(request, session, e)
    return render(request, "me_application_withdraw.html", session=session,
                  application=application, **catalogue_names())


@router.post("/me/applications/{application_id}/withdraw")
async def withdraw(
    request: Request, application_id: str, applications: ApplicationsDep, views: ViewsDep,
    clock: ClockDep,
) -> Response:
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    await checked_form(request, session)
    again = partial(_application, request, session, applications, views, clock.now(),
                    application_id)
    try:
        await run_in_threadpool(applications.withdraw, session.principal.subject,
                                application_id)
    except VaultError as e:
        return await _failed(request, session, again, e)
    return see_other(f"/me/applications/{application_id}")


@router.post("/me/applications/{application_id}/rating")
async def rate(
    request: Request, application_id: str, applications: ApplicationsDep, views: ViewsDep,
    clock: ClockDep,
) -> Response:
    """好差评: once decided, once — 1 to 5, and a comment if the resident likes."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    form = await checked_form(request, session)
    again = partial(_application, request, session, applications, views, clock.now(),
                    application_id)
    score = form.get("score", "")
    comment = form.get("comment", "").strip() or None
    try:
        await run_in_threadpool(applications.rate, session.principal.subject, application_id,
                                whole_number("score", score, 1, 5), comment)
    except VaultError as e:
        return await _failed(request, session, again, e)
    return see_other(f"/me/applications/{application_id}")

