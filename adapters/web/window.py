"""一口受理: the window clerk's pages — the code the resident shows and a service the unit's
windows accept; a preview of what accepting would take (the code checked, not spent, and
nothing recorded): the materials the library holds and will attach (证件复用), the others
with whether 容缺 or 告知承诺 may stand in for them and why, the form filled in (反填) with
each value's source; the acceptance, by the same service as ``POST /v1/applications``; and
its receipt (受理回执), to print."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from adapters.http.deps import ApplicationsDep, caught_up, viewer_of
from adapters.http.problems import Problem, status_of
from adapters.web.pages import (
    PERSONAS,
    catalogue_names,
    checked_form,
    error_page,
    render,
    see_other,
    signed_in,
)
from adapters.web.sessions import Session
from policy.catalogue import Service, catalogue
from vault.errors import InvalidInput, VaultError
from vault.services.applications import Applications, Preview, commitment_statement

router = APIRouter(include_in_schema=False)

CODE = re.compile(r"[A-Za-z0-9]{1,16}")
"""A code as the resident's page shows it (the API's pattern for it)."""
CHOICES = ("missing", "commitment")
"""What may stand in for a material the library does not hold: 容缺 or 告知承诺."""


def _clerk(request: Request) -> tuple[Session, str] | None:
    """The signed-in clerk's session and the unit of their window."""
    session = signed_in(request, "clerk")
    unit = session.principal.unit if session is not None else None
    if session is None or unit is None or not catalogue().knows("unit", unit):
        return None
    return session, unit


def _offered(unit: str) -> list[Service]:
    """The services the unit's windows may accept, as the catalogue says."""
    found = catalogue()
    return [s for s in found.services() if found.accepts(s.id, unit)]



def _start(
    request: Request, session: Session, unit: str, status: int = 200,
    error: VaultError | None = None, asked: dict[str, str] | None = None,
) -> Response:
    """The first page: whose code, for which service; with what went wrong, if anything."""
    return render(request, "window.html", status=status, session=session, unit=unit,
                  offered=_offered(unit), error=error, asked=asked or {}, **catalogue_names())


def _asked(form: dict[str, str]) -> tuple[str, str, str]:
    """The resident, the service and the code, as the clerk typed them."""
    code = form.get("code", "").strip()
    if not CODE.fullmatch(code):
        raise InvalidInput("authorization_code", "must be the letters and digits of the code "
                           "the resident shows")
    return form.get("resident_id", "").strip(), form.get("service_id", ""), code


class _Behind(VaultError):
    """The read models did not catch up with the log in time (the API's 503)."""

    code = "read-models-behind"


async def _fresh(request: Request) -> None:
    """As the API's window waits: the read models hold everything written so far, so the
    library holds whatever the resident uploaded a moment ago."""
    try:
        await caught_up(request)
    except Problem as e:
        raise _Behind(e.detail) from None


async def _preview(
    applications: Applications, unit: str, resident_id: str, service_id: str, code: str
) -> Preview:
    return await run_in_threadpool(partial(
        applications.preview, resident_id, service_id, unit=unit, authorization_code=code,
    ))


def _shown_preview(
    request: Request, session: Session, unit: str, found: Preview, code: str,
    status: int = 200, error: VaultError | None = None,
    typed: dict[str, str] | None = None, chosen: dict[str, str] | None = None,
) -> Response:
    return render(
        request, "window_preview.html", status=status, session=session, unit=unit,
        preview=found, code=code, error=error, typed=typed or {}, chosen=chosen or {},
        service=catalogue().service(found.service_id), statement=commitment_statement,
        **catalogue_names(),
    )


@router.get("/window")
def window(request: Request) -> Response:
    """Whose code, for which of the services this window accepts."""
    clerk = _clerk(request)
    if clerk is None:
        return see_other("/signin")
    return _start(request, *clerk)


@dataclass(frozen=True)
class _Previewed:
    """A window's form that passed its checks: who sent it, what it says, and what
    accepting it would take (the code checked, not spent)."""

    session: Session
    unit: str
    form: dict[str, str]
    resident_id: str
    service_id: str
    code: str
    found: Preview


async def _previewed(request: Request, applications: Applications) -> _Previewed | Response:
    """The clerk's form, its CSRF token and its code checked, and the preview — or the
    page to answer instead (to /signin, refused, or the start again with the reason)."""
    clerk = _clerk(request)
    if clerk is None:
        return see_other("/signin")
    session, unit = clerk
    form = await checked_form(request, session)
    try:
        resident_id, service_id, code = _asked(form)
        await _fresh(request)
        found = await _preview(applications, unit, resident_id, service_id, code)
    except VaultError as e:
        return _start(request, session, unit, status=_status(e), error=e,
                      asked=_asked_back(form))
    return _Previewed(session, unit, form, resident_id, service_id, code, found)


def _asked_back(form: dict[str, str]) -> dict[str, str]:
    """What the start page shows again when it is shown with a reason."""
    return {k: form.get(k, "") for k in ("resident_id", "service_id")}


@router.post("/window/preview")
async def preview(request: Request, applications: ApplicationsDep) -> Response:
    """What accepting would take, before anything is recorded: the code is checked first
    (nothing of the resident is shown without it) and stays unspent."""
    done = await _previewed(request, applications)
    if isinstance(done, Response):
        return done
    return _shown_preview(request, done.session, done.unit, done.found, done.code)


@router.post("/window/accept")
async def accept(request: Request, applications: ApplicationsDep) -> Response:
    """Accept the application (一口受理) as ``POST /v1/applications`` does, spending the
    code; then its receipt."""
    done = await _previewed(request, applications)
    if isinstance(done, Response):
        return done
    session, unit, form, found, code = done.session, done.unit, done.form, done.found, done.code
    typed = {f.removeprefix("form-"): v.strip() for f, v in form.items()
             if f.startswith("form-")}
    chosen = {f.removeprefix("material-"): v for f, v in form.items()
              if f.startswith("material-")}
    try:
        if any(v not in CHOICES for v in chosen.values()):
            raise InvalidInput("materials", "choose 容缺 (missing) or 告知承诺 (commitment)")
        accepted = await run_in_threadpool(partial(
            applications.apply, done.resident_id, done.service_id,
            missing=tuple(d for d, v in chosen.items() if v == "missing"),
            commitments=tuple(d for d, v in chosen.items() if v == "commitment"),
            form=_given(typed, found), unit=unit, clerk=session.principal.subject,
            authorization_code=code,
        ))
    except InvalidInput as e:
        return _shown_preview(request, session, unit, found, code, status=422, error=e,
                              typed=typed, chosen=chosen)
    except VaultError as e:
        return _start(request, session, unit, status=_status(e), error=e,
                      asked=_asked_back(form))
    return see_other(f"/window/applications/{accepted.application.id}")


def _given(typed: dict[str, str], found: Preview) -> dict[str, str]:
    """What the clerk typed over the form: a value filled in and left as it was keeps its
    source; a field left empty that nothing filled is left out."""
    given: dict[str, str] = {}
    for field, value in typed.items():
        filled = found.form.get(field, {}).get("value")
        if value != (filled or ""):
            given[field] = value
    return given


def _status(error: VaultError) -> int:
    return 503 if isinstance(error, _Behind) else status_of(error)


@router.get("/window/applications/{application_id}")
def receipt(request: Request, application_id: str, applications: ApplicationsDep) -> Response:
    """受理回执: an application this unit's windows accepted, to print for the resident."""
    clerk = _clerk(request)
    if clerk is None:
        return see_other("/signin")
    session, unit = clerk
    try:
        application = applications.seen_by(viewer_of(session.principal), application_id)
    except VaultError as e:
        return error_page(request, session, e)
    clerks = {p.subject: p.name for p in PERSONAS if p.role == "clerk"}
    return render(request, "window_receipt.html", session=session, unit=unit,
                  application=application, timing=applications.timing(application),
                  clerk_name=clerks.get(application.clerk or ""), **catalogue_names())
