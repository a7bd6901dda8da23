"""我的办件: a resident's applications, newest first, each with its status, clock and what is
missing; one application's history, materials and form, and what the resident may do with
it — supply what a reviewer asked for (from the library, or a new upload), withdraw, rate;
a one-use code (办事码) to show at a window; and applying online. The same services and
rules as the API's ``/v1/me/applications`` routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from eventsourcing.domain import Aggregate
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.types import Message

from adapters.http.deps import ApplicationsDep, ClockDep, DocumentsDep, ViewsDep
from adapters.http.problems import Problem
from adapters.http.uploads import MAX_BOUNDARY, read_upload
from adapters.web.pages import checked_form, error_page, render, see_other, signed_in
from adapters.web.sessions import Session
from policy.catalogue import catalogue
from vault.errors import AlreadyRated, ApplicationClosed, InvalidInput, VaultError
from vault.services.applications import Applications, Viewer

router = APIRouter(include_in_schema=False)
CODE_SERVICE_FIELD = "service_id"


@dataclass(frozen=True)
class Happened:
    """One entry of an application's history, as the resident reads it."""

    kind: str
    """accepted, approve, return, reject, supplied, withdrawn or rated."""
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
    kinds = {"Accepted": "accepted", "Supplied": "supplied", "Withdrawn": "withdrawn",
             "Rated": "rated"}
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


def _names() -> dict[str, Any]:
    found = catalogue()
    return {"services": {s.id: s for s in found.services()},
            "doc_types": {t.id: t for t in found.doc_types()},
            "departments": {d.id: d for d in found.of_kind("department")},
            "units": {u.id: u for u in found.of_kind("unit")}}


def _refused(request: Request, session: Session) -> Response:
    return render(request, "refused.html", status=403, session=session)


@router.get("/me/applications")
def my_applications(
    request: Request, applications: ApplicationsDep, views: ViewsDep
) -> Response:
    """我的办件: newest first, each with its status, clock, due date and what is missing."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    return _list(request, session, applications, views)


def _list(
    request: Request, session: Session, applications: Applications, views: Any,
    made: Any = None, made_for: str | None = None,
) -> Response:
    entries = views.applications(session.principal.subject, limit=100)
    shown = [applications.application(e.application_id) for e in entries]
    return render(request, "me_applications.html", session=session,
                  rows=[(a, applications.timing(a)) for a in shown], made=made,
                  made_for=made_for, **_names())


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
    if form is None:
        return _refused(request, session)
    service_id = form.get(CODE_SERVICE_FIELD, "")
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
    request: Request, session: Session, applications: Applications, views: Any,
    now: datetime, application_id: str, status: int = 200, notice: str | None = None,
    message: str | None = None,
) -> Response:
    viewer = Viewer("resident", session.principal.subject)
    application = applications.seen_by(viewer, application_id)
    history = history_of(applications.history(viewer, application_id))
    asked = set(application.asked_for)
    held = views.library(session.principal.subject, limit=200, doc_types=asked,
                         unexpired_at=now) if asked else []
    found = catalogue()
    fields = ({f.field: f for f in found.service(application.service_id).form}
              if found.knows("service", application.service_id) else {})
    return render(
        request, "me_application.html", status=status, session=session,
        application=application, timing=applications.timing(application), history=history,
        library={t: [d for d in held if d.doc_type == t] for t in application.asked_for},
        fields=fields, notice=notice, message=message, **_names(),
    )


@router.post("/me/applications/{application_id}/supplements")
async def supply(
    request: Request, application_id: str, applications: ApplicationsDep,
    documents: DocumentsDep, views: ViewsDep, clock: ClockDep,
) -> Response:
    """补正: supply a material a reviewer asked for — a document of the library (a form of
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
            if form is None:
                return _refused(request, session)
            await run_in_threadpool(applications.seen_by, Viewer("resident", resident),
                                    application_id)
            doc_type, document_id = form.get("doc_type", ""), form.get("document_id", "")
        await run_in_threadpool(applications.supply, resident, application_id, doc_type,
                                document_id)
    except (Problem, VaultError) as e:
        return await _failed(request, session, again, e)
    return see_other(f"/me/applications/{application_id}")


async def _failed(
    request: Request, session: Session, again: Any, error: Problem | VaultError
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
    documents: Any,
) -> tuple[str, str] | None:
    """A new file for the library, read as the API reads an upload, with the page's CSRF
    field beside it; None (nothing filed) without the session's token."""
    resident = session.principal.subject
    await run_in_threadpool(applications.seen_by, Viewer("resident", resident), application_id)
    bounds = request.app.state.limits.upload
    csrf_part = 2 * bounds.field_bytes + MAX_BOUNDARY + 8  # its header, value and boundary
    upload = await read_upload(_bounded(request, bounds.body_bytes + csrf_part), bounds,
                               also=("csrf",))
    try:
        if not hmac.compare_digest(upload.fields.get("csrf", ""), session.csrf):
            return None
        filed = await run_in_threadpool(
            lambda: documents.submit(resident, upload.stream(), upload.details())
        )
    finally:
        upload.close()
    return filed.value.doc_type, str(filed.value.id)


def _bounded(request: Request, cap: int) -> Request:
    """The request, its body refused (413) past ``cap`` bytes as it streams in — as the
    API's guard bounds an upload's body."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise Problem(413, "too-large", "Payload too large", f"the body is over {cap} bytes")
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > cap:
            raise Problem(413, "too-large", "Payload too large",
                          f"the body is over {cap} bytes")
        return message

    return Request(request.scope, receive)


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
                  application=application, **_names())


@router.post("/me/applications/{application_id}/withdraw")
async def withdraw(
    request: Request, application_id: str, applications: ApplicationsDep, views: ViewsDep,
    clock: ClockDep,
) -> Response:
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    form = await checked_form(request, session)
    if form is None:
        return _refused(request, session)
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
    if form is None:
        return _refused(request, session)
    again = partial(_application, request, session, applications, views, clock.now(),
                    application_id)
    score = form.get("score", "")
    comment = form.get("comment", "").strip() or None
    try:
        if not score.isdigit() or len(score) > 1:
            raise InvalidInput("score", "must be a whole number from 1 to 5")
        await run_in_threadpool(applications.rate, session.principal.subject, application_id,
                                int(score), comment)
    except VaultError as e:
        return await _failed(request, session, again, e)
    return see_other(f"/me/applications/{application_id}")

