"""Applications (办件): a resident applies online or authorises a window clerk with a
one-use code (一口受理); the reviewing departments read the materials under the
application's consents and decide step by step (后台协同); supervisors watch the time
limits of their unit and everything under it (绩效监督).

Who may see an application is the service's rule (:meth:`Applications.may_see`); to anyone
else it does not exist (404), so an id tells a stranger nothing.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from adapters.formats import ACCEPTED_TYPES
from adapters.http.application_schemas import (
    AcceptedOut,
    ApplicationOut,
    CodeIn,
    CodeOut,
    CommitmentIn,
    DecisionIn,
    FiguresOut,
    OnlineApplicationIn,
    RatingIn,
    SupplementIn,
    WindowApplicationIn,
    application_out,
    figures_out,
)
from adapters.http.contract import problems
from adapters.http.departments import answer_fetch
from adapters.http.deps import (
    ApplicationsDep,
    CataloguesDep,
    CaughtUp,
    ClockDep,
    CurrentClerk,
    CurrentOfficer,
    CurrentResident,
    CurrentSupervisor,
    CurrentViewer,
    DocumentsDep,
    FetchesDep,
    Fresh,
    ViewsDep,
    answer_position,
)
from adapters.http.downloads import Disposition
from adapters.http.fields import UNIT_IDS, DocTypePath, OptionalDay
from adapters.http.paging import Cursor, Limit, Page, decode_cursor
from adapters.http.problems import Problem
from adapters.http.strict_json import NotStrictJson, is_json_media, loads_strict
from adapters.http.uploads import UPLOAD_BODY, read_upload
from projections.queries import QueuedEntry
from vault.application import Application
from vault.errors import InvalidInput
from vault.ids import UUID_PATTERN
from vault.inputs import check_known
from vault.services.applications import Accepted, Applications, Viewer
from vault.supervision import By, figures, scope

router = APIRouter(tags=["applications"])

ApplicationIdPath = Annotated[str, Path(pattern=UUID_PATTERN, description="an application's id")]
DUE_CURSOR = r"^[0-9]{1,19}-[0-9]{1,18}$"
DueCursor = Annotated[
    str | None, Query(pattern=DUE_CURSOR, description="the next_cursor of the page before"),
]
_HIDDEN = "no such application, or not one this caller may see"


def _shown(
    applications: Applications, viewer: Viewer, application: Application
) -> ApplicationOut:
    return application_out(application, applications.timing(application),
                           with_form=viewer.role != "supervisor")


def _accepted(applications: Applications, viewer: Viewer, accepted: Accepted) -> AcceptedOut:
    shown = _shown(applications, viewer, accepted.application)
    return AcceptedOut(**shown.model_dump(), consent_receipts=accepted.receipts)


def _page_of(
    applications: Applications, viewer: Viewer, entries: list[QueuedEntry], limit: int
) -> Page[ApplicationOut]:
    """A page of applications listed by the read models, each shown from its events; the
    cursor is the last one's place in the list's order."""
    shown = entries[:limit]
    items = [_shown(applications, viewer, applications.application(e.application.application_id))
             for e in shown]
    cursor = f"{shown[-1].due}-{shown[-1].position}" if len(entries) > limit else None
    return Page(items=items, next_cursor=cursor)


def _due_cursor(cursor: str | None) -> tuple[int, int] | None:
    if not cursor:
        return None
    if not re.fullmatch(DUE_CURSOR.strip("^$"), cursor):
        raise InvalidInput("cursor", "is not a cursor this API gave out")
    due, position = cursor.split("-")
    return int(due), int(position)


_WAITS = "the read models did not catch up with the library in time; retry"

# The resident's side


@router.post("/v1/me/authorization-codes", status_code=201, tags=["residents"])
def make_authorization_code(
    body: CodeIn, response: Response, resident: CurrentResident, applications: ApplicationsDep
) -> CodeOut:
    """A one-use code, valid ten minutes, to tell a window clerk: with it the clerk may
    accept one application for this service for me (and without it learns nothing of me)."""
    made = applications.authorization_code(resident, body.service_id)
    answer_position(response, made.position)
    return CodeOut(code=made.code, expires_at=made.expires_at)


@router.post("/v1/me/applications", status_code=201, tags=["residents"],
             responses=problems(503, why_503=_WAITS))
def apply_online(
    body: OnlineApplicationIn, response: Response, resident: CurrentResident,
    applications: ApplicationsDep, caught_up: CaughtUp,
) -> AcceptedOut:
    """Apply online: every material is taken from my library where my tracks allow reuse
    and its trust level suffices (证件复用), under consents made for exactly this
    application, each with its signed receipt.

    Beyond the schema (422): a material neither in the library nor named in `missing` or
    `commitments`; a key material, or any without the missing-allowed track, named in
    `missing`; one the service does not let a commitment replace, or any without the
    commitment track, named in `commitments`; a field the service's form does not have."""
    accepted = applications.apply(resident, body.service_id, missing=tuple(body.missing),
                                  commitments=tuple(body.commitments), form=body.form)
    answer_position(response, accepted.position)
    return _accepted(applications, Viewer("resident", resident), accepted)



@router.get("/v1/me/applications", tags=["residents"])
def my_applications(
    resident: CurrentResident, applications: ApplicationsDep, views: ViewsDep, fresh: Fresh,
    limit: Limit = 20, cursor: Cursor = None,
) -> Page[ApplicationOut]:
    """My applications, newest first."""
    rows = views.applications(resident, limit=limit + 1, before=decode_cursor(cursor))
    viewer = Viewer("resident", resident)
    items = [_shown(applications, viewer, applications.application(r.application_id))
             for r in rows[:limit]]
    return Page(items=items,
                next_cursor=str(rows[limit - 1].position) if len(rows) > limit else None)


_SUPPLEMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            **UPLOAD_BODY["requestBody"]["content"],
            "application/json": {"schema": SupplementIn.model_json_schema()},
        },
    }
}


@router.post(
    "/v1/me/applications/{application_id}/supplements", tags=["residents"],
    openapi_extra=_SUPPLEMENT_BODY,
    responses=problems(404, 409, 503, why_404=_HIDDEN,
                       why_409="the application asks for nothing now, or is closed",
                       why_503="the blob store is unreachable; nothing was stored"),
)
async def supply(
    application_id: ApplicationIdPath, request: Request, response: Response,
    resident: CurrentResident, applications: ApplicationsDep, documents: DocumentsDep,
) -> ApplicationOut:
    """Supply a material a reviewer asked for (补正): a new file (multipart, as
    POST /v1/me/documents takes it; it joins my library) or a document of my library
    (JSON `{doc_type, document_id}`). When the last one asked for arrives, the clock runs
    again."""
    await run_in_threadpool(applications.seen_by, Viewer("resident", resident), application_id)
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media == "multipart/form-data":
        upload = await read_upload(request, request.app.state.limits.upload)
        try:
            filed = await run_in_threadpool(
                lambda: documents.submit(resident, upload.stream(), upload.details())
            )
        finally:
            upload.close()
        doc_type, document_id = filed.value.doc_type, str(filed.value.id)
    else:
        body = await _json_body(request, request.app.state.limits.json_bytes)
        doc_type, document_id = body.doc_type, body.document_id
    supplied = await run_in_threadpool(applications.supply, resident, application_id,
                                       doc_type, document_id)
    answer_position(response, supplied.position)
    return _shown(applications, Viewer("resident", resident), supplied.value)


async def _json_body(request: Request, cap: int) -> SupplementIn:
    """A supplement's JSON body, read up to ``cap`` bytes (the route takes uploads too, so
    the guard bounds it by the upload's size and leaves its JSON unread) as strictly as any
    other JSON body."""
    if not is_json_media(request.headers.get("content-type")):
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      "a supplement is multipart/form-data or application/json")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise Problem(413, "too-large", "Payload too large",
                          f"the body is over the {cap}-byte limit for this route")
    try:
        return SupplementIn.model_validate(loads_strict(bytes(body)))
    except NotStrictJson as e:
        raise InvalidInput("body", str(e)) from None
    except ValueError as e:  # not JSON, or not this shape
        problem = e.errors()[0] if isinstance(e, ValidationError) else None
        where = ".".join(str(p) for p in problem["loc"]) if problem else "body"
        raise InvalidInput(where or "body", problem["msg"] if problem else
                           "is not a JSON object") from None


@router.post(
    "/v1/me/applications/{application_id}/commitments", tags=["residents"],
    responses=problems(404, 409, why_404=_HIDDEN,
                       why_409="it is closed, or misses nothing now"),
)
def commit(
    application_id: ApplicationIdPath, body: CommitmentIn, response: Response,
    resident: CurrentResident, applications: ApplicationsDep,
) -> ApplicationOut:
    """Sign a commitment (告知承诺书) in place of a material my open application was
    accepted without (容缺): it stands in for the material at trust level D, its words
    kept with the application; the clock, the status and the queue stay as they were.

    Beyond the schema (422): a material that is not missing (while another is); one the
    service, in the catalogue in force, does not let a commitment replace, or any where
    the tracks the application was accepted with do not include commitment."""
    committed = applications.commit(resident, application_id, body.doc_type)
    answer_position(response, committed.position)
    return _shown(applications, Viewer("resident", resident), committed.value)


@router.post(
    "/v1/me/applications/{application_id}/withdraw", tags=["residents"],
    responses=problems(404, 409, why_404=_HIDDEN, why_409="it is decided or withdrawn"),
)
def withdraw(
    application_id: ApplicationIdPath, response: Response, resident: CurrentResident,
    applications: ApplicationsDep,
) -> ApplicationOut:
    withdrawn = applications.withdraw(resident, application_id)
    answer_position(response, withdrawn.position)
    return _shown(applications, Viewer("resident", resident), withdrawn.value)


@router.post(
    "/v1/me/applications/{application_id}/rating", tags=["residents"],
    responses=problems(404, 409, why_404=_HIDDEN,
                       why_409="it is not decided yet, or rated already"),
)
def rate(
    application_id: ApplicationIdPath, body: RatingIn, response: Response,
    resident: CurrentResident, applications: ApplicationsDep,
) -> ApplicationOut:
    """Rate the service once it is decided (好差评), once."""
    rated = applications.rate(resident, application_id, body.score, body.comment)
    answer_position(response, rated.position)
    return _shown(applications, Viewer("resident", resident), rated.value)


# The window


@router.post(
    "/v1/applications", status_code=201, tags=["windows"],
    responses=problems(403, 503, why_403="the code is not valid for this service now, or "
                       "the service is not accepted at the clerk's unit", why_503=_WAITS),
)
def accept_at_window(
    body: WindowApplicationIn, response: Response, clerk: CurrentClerk,
    applications: ApplicationsDep, caught_up: CaughtUp,
) -> AcceptedOut:
    """Accept an application at my window (一口受理) with the resident's one-use code,
    checked before anything else: without it I learn nothing of the resident."""
    accepted = applications.apply(
        body.resident_id, body.service_id, missing=tuple(body.missing),
        commitments=tuple(body.commitments), form=body.form,
        unit=clerk.unit, clerk=clerk.subject, authorization_code=body.authorization_code,
    )
    answer_position(response, accepted.position)
    return _accepted(applications, Viewer("clerk", clerk.subject, unit=clerk.unit), accepted)


# Anyone it concerns


@router.get("/v1/applications/{application_id}",
            responses=problems(404, why_404=_HIDDEN))
def application(
    application_id: ApplicationIdPath, viewer: CurrentViewer, applications: ApplicationsDep,
) -> ApplicationOut:
    """An application, to the resident, the officers of the departments that review it or
    own its service, the clerks of the unit that accepted it, and the supervisors of that
    unit or one above it (without the form's values)."""
    return _shown(applications, viewer, applications.seen_by(viewer, application_id))


# The back office


@router.get(
    "/v1/applications/{application_id}/materials/{doc_type}/content",
    tags=["departments"], response_class=StreamingResponse,
    responses={
        200: {"content": {t: {} for t in ACCEPTED_TYPES}},
        206: {"description": "a range"},
        **problems(403, 404, 409, 410, 416, 503,
                   why_403="denied, with the reasons; the attempt is recorded (X-Access-Id)",
                   why_404=_HIDDEN + "; or it holds no such material (yet)",
                   why_503="the blob store is unreachable; nothing was charged"),
    },
)
async def read_material(
    application_id: ApplicationIdPath, doc_type: DocTypePath, request: Request,
    officer: CurrentOfficer, applications: ApplicationsDep, fetches: FetchesDep,
    disposition: Disposition = "attachment",
) -> Response:
    """Read a material of an application my department reviews: a fetch under the
    application's own consent to my department, recorded as any fetch is (the resident
    sees it in their access log)."""
    material = await run_in_threadpool(applications.material, application_id,
                                       officer.department, doc_type)
    return await answer_fetch(
        request, fetches, disposition, officer=officer.officer_id,
        department=officer.department, resident_id=material.resident_id,
        document_id=material.document_id, purpose=material.purpose,
        consent_id=material.consent_id,
    )


@router.get("/v1/work/queue", tags=["departments"])
def work_queue(
    officer: CurrentOfficer, applications: ApplicationsDep, views: ViewsDep, fresh: Fresh,
    status: Annotated[
        str | None, Query(pattern="^(accepted|in-review|returned)$",
                          description="only those in this state")
    ] = None,
    limit: Limit = 20,
    cursor: DueCursor = None,
) -> Page[ApplicationOut]:
    """The applications waiting on my department at their current step, soonest due
    first (those returned to the resident, whose clock stands still, last)."""
    entries = views.queue(officer.department, limit=limit + 1, status=status,
                          after=_due_cursor(cursor))
    viewer = Viewer("officer", officer.officer_id, officer.department)
    return _page_of(applications, viewer, entries, limit)


@router.post(
    "/v1/applications/{application_id}/decisions", tags=["departments"],
    responses=problems(
        403, 404, 409, why_403="my department reviews it, but not at any step (the owner)",
        why_404=_HIDDEN, why_409="its step has moved on (another reviewer decided first), "
        "it waits for the resident, or it is closed",
    ),
)
def decide(
    application_id: ApplicationIdPath, body: DecisionIn, response: Response,
    officer: CurrentOfficer, applications: ApplicationsDep,
) -> ApplicationOut:
    """Decide my department's part of the current step: approve (the last approval issues
    the service's document into the resident's library), return it for the resident to
    supply `materials` (补正: the clock stops), or reject it."""
    viewer = Viewer("officer", officer.officer_id, officer.department)
    applications.seen_by(viewer, application_id)
    decided = applications.decide(
        application_id, department=officer.department, officer=officer.officer_id,
        decision=body.decision, reason=body.reason, asked_for=tuple(body.materials),
    )
    answer_position(response, decided.position)
    return _shown(applications, viewer, decided.value)


# Supervision


SupervisedUnit = Annotated[
    str | None,
    Query(json_schema_extra=UNIT_IDS,
          description="a unit at or under mine (default: mine)"),
]


def _supervised(supervisor: CurrentSupervisor, catalogues: CataloguesDep, unit: str | None) -> str:
    if unit is None:
        return supervisor.unit
    check_known("unit", "unit", unit)
    if not catalogues.current().within(unit, supervisor.unit):
        raise Problem(403, "outside-unit", "Forbidden",
                      f"{unit} is not {supervisor.unit} or under it")
    return unit


@router.get(
    "/v1/supervision/figures", tags=["supervision"],
    responses=problems(403, why_403="the unit is not mine or under mine"),
)
def supervision_figures(
    supervisor: CurrentSupervisor, catalogues: CataloguesDep, views: ViewsDep,
    clock: ClockDep, fresh: Fresh,
    unit: SupervisedUnit = None,
    since: Annotated[OptionalDay, Query(description="the first day (China time)")] = None,
    until: Annotated[OptionalDay, Query(description="the last day (China time)")] = None,
    by: Annotated[By, Query(description="rows per unit under it, department or service")]
    = "unit",
) -> list[FiguresOut]:
    """The unit's figures for the period (绩效监督) — accepted, decided, on-time rate,
    average working days, overdue now, materials reused against brought, trips saved,
    average rating — as a whole, then by the units directly under it, by department or
    by service."""
    supervised = _supervised(supervisor, catalogues, unit)
    rows = figures(views, catalogues.current(), unit=supervised, by=by, since=since,
                   until=until, now=clock.now())
    return [figures_out(r) for r in rows]


@router.get(
    "/v1/supervision/overdue", tags=["supervision"],
    responses=problems(403, why_403="the unit is not mine or under mine"),
)
def supervision_overdue(
    supervisor: CurrentSupervisor, catalogues: CataloguesDep, views: ViewsDep,
    applications: ApplicationsDep, clock: ClockDep, fresh: Fresh,
    unit: SupervisedUnit = None, limit: Limit = 20, cursor: DueCursor = None,
) -> Page[ApplicationOut]:
    """The open applications of the unit and those under it that are past their due
    moment now, the longest overdue first."""
    supervised = _supervised(supervisor, catalogues, unit)
    entries = views.overdue(clock.now(), units=scope(catalogues.current(), supervised),
                            limit=limit + 1, after=_due_cursor(cursor))
    viewer = Viewer("supervisor", supervisor.subject, unit=supervisor.unit)
    return _page_of(applications, viewer, entries, limit)
