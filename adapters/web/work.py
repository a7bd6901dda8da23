"""后台: a department's pages — its queue soonest due first with each clock's colour, an
application with its materials (each one shown is a recorded fetch under the application's
consent, as the API's), its form and history, and the decision; fetching a resident's
document for a purpose, with the denial's reasons, and the fast-track panel."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from adapters.http.departments import answer_fetch
from adapters.http.deps import (
    ApplicationsDep,
    ClockDep,
    FetchesDep,
    PoliciesDep,
    ViewsDep,
    viewer_of,
)
from adapters.web.pages import (
    SameOriginOnly,
    catalogue_names,
    checked_form,
    error_page,
    render,
    see_other,
    signed_in,
)
from adapters.web.sessions import Session
from policy.catalogue import catalogue
from vault.errors import AccessDenied, InvalidInput, NoConsent, ServiceNotHandled, VaultError
from vault.ids import check_resident_id, parse_uuid
from vault.inputs import check_known
from vault.services.applications import Applications

router = APIRouter(include_in_schema=False)



def _form_of(service_id: str) -> tuple[Any, ...]:
    found = catalogue()
    return found.service(service_id).form if found.knows("service", service_id) else ()


@router.get("/work")
def queue(request: Request, views: ViewsDep, applications: ApplicationsDep) -> Response:
    """The department's queue, soonest due first (those waiting for the resident last)."""
    session = signed_in(request, "officer")
    if session is None or session.principal.department is None:
        return see_other("/signin")
    entries = views.queue(session.principal.department, limit=100)
    shown = [applications.application(e.application.application_id) for e in entries]
    rows = [(a, applications.timing(a)) for a in shown]
    return render(request, "work.html", session=session, rows=rows, **catalogue_names())


@router.get("/work/applications/{application_id}")
def application_page(
    request: Request, application_id: str, applications: ApplicationsDep
) -> Response:
    session = signed_in(request, "officer")
    if session is None:
        return see_other("/signin")
    try:
        return _application(request, session, applications, application_id)
    except VaultError as e:
        return error_page(request, session, e)


def _application(
    request: Request, session: Session, applications: Applications, application_id: str,
    status: int = 200, message: str | None = None,
) -> Response:
    application = applications.seen_by(viewer_of(session.principal), application_id)
    department = session.principal.department or ""
    return render(
        request, "work_application.html", status=status, session=session,
        application=application, timing=applications.timing(application),
        deciding=application.at_current_step(department), message=message,
        fields={f.field: f for f in _form_of(application.service_id)}, **catalogue_names(),
    )


@router.post("/work/applications/{application_id}/decision")
async def decide(
    request: Request, application_id: str, applications: ApplicationsDep
) -> Response:
    """Approve, return for supplement naming what (补正), or reject — with the reason."""
    session = signed_in(request, "officer")
    if session is None:
        return see_other("/signin")
    form = await checked_form(request, session)
    principal = session.principal
    try:
        await run_in_threadpool(applications.seen_by, viewer_of(session.principal), application_id)
        decision = form.get("decision", "")
        asked = tuple(k.removeprefix("material-") for k in form if k.startswith("material-"))
        await run_in_threadpool(
            partial(applications.decide, application_id, department=principal.department or "",
                    officer=principal.subject, decision=decision,  # type: ignore[arg-type]
                    reason=form.get("reason", ""), asked_for=asked)
        )
    except VaultError as e:
        if isinstance(e, InvalidInput):
            return _application(request, session, applications, application_id, status=422,
                                message=str(e))
        return error_page(request, session, e)
    return see_other(f"/work/applications/{application_id}")


@router.get("/work/applications/{application_id}/materials/{doc_type}",
            dependencies=[SameOriginOnly])
async def material(
    request: Request, application_id: str, doc_type: str, applications: ApplicationsDep,
    fetches: FetchesDep,
) -> Response:
    """A material shown in the page: a fetch under the application's consent, recorded
    before a byte is sent (the resident sees it in their access log)."""
    session = signed_in(request, "officer")
    if session is None:
        return see_other("/signin")
    principal = session.principal
    try:
        parse_uuid("application_id", application_id)
        check_known("doc_type", "doc_type", doc_type)
        found = await run_in_threadpool(applications.material, application_id,
                                        principal.department or "", doc_type)
        return await answer_fetch(
            request, fetches, "inline", officer=principal.subject,
            department=principal.department or "", resident_id=found.resident_id,
            document_id=found.document_id, purpose=found.purpose,
            consent_id=found.consent_id,
        )
    except AccessDenied as e:
        return render(request, "error.html", status=403, session=session,
                      message="; ".join(e.reasons), code=e.code)
    except VaultError as e:
        return error_page(request, session, e)


@router.get("/work/fetch")
def fetch_for_purpose(
    request: Request, views: ViewsDep, policies: PoliciesDep, clock: ClockDep,
    resident: str = "", purpose: str = "",
) -> Response:
    """调阅材料: the consents the department holds; for a resident and a purpose, the
    documents it may fetch now (read from the read models, as the API lists them) and the
    fast-track panel (the tracks that apply, with reasons naming requirements)."""
    session = signed_in(request, "officer")
    if session is None or session.principal.department is None:
        return see_other("/signin")
    principal, now = session.principal, clock.now()
    department = principal.department or ""
    held = views.consents_held(department, now, limit=100)
    context: dict[str, Any] = {"held": held, "resident": resident, "purpose": purpose,
                               "documents": None, "fast_track": None, "fast_track_refused": None}
    if resident or purpose:
        try:
            check_resident_id(resident)
            check_known("purpose", "service", purpose)
        except InvalidInput as e:
            return render(request, "work_fetch.html", status=422, session=session,
                          message=str(e), **context, **catalogue_names())
        context["documents"] = views.fetchable(
            resident, officer=principal.subject, department=department, purpose=purpose,
            decision_point=policies.decision_point, now=now, limit=50,
        )
        try:
            context["fast_track"] = policies.tracks_for(resident, purpose, department=department)
        except (NoConsent, ServiceNotHandled) as e:
            context["fast_track_refused"] = e.code
    return render(request, "work_fetch.html", session=session, message=None, **context,
                  **catalogue_names())


@router.get("/work/fetch/{resident_id}/{document_id}", dependencies=[SameOriginOnly])
async def fetch_document(
    request: Request, resident_id: str, document_id: str, fetches: FetchesDep,
    purpose: str = "",
) -> Response:
    """A document fetched for a purpose and shown in the page: judged and recorded as the
    API's fetch is (the resident sees it); a denial shows its reasons."""
    session = signed_in(request, "officer")
    if session is None:
        return see_other("/signin")
    principal = session.principal
    try:
        check_resident_id(resident_id)
        parse_uuid("document_id", document_id)
        check_known("purpose", "service", purpose)
        return await answer_fetch(
            request, fetches, "inline", officer=principal.subject,
            department=principal.department or "", resident_id=resident_id,
            document_id=document_id, purpose=purpose,
        )
    except AccessDenied as e:
        return render(request, "work_denied.html", status=403, session=session,
                      reasons=list(zip(e.reason_codes, e.reasons, strict=True)),
                      resident=resident_id,
                      purpose=purpose, **catalogue_names())
    except VaultError as e:
        return error_page(request, session, e)
