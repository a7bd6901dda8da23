"""Declared dependencies: one per service, and the principal each route requires."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant

from adapters.http.fields import Position
from adapters.http.problems import Problem
from adapters.wiring import Services
from keys.tokens import Principal, Role
from projections.ledger import Ledger
from projections.queries import Views
from vault.errors import InvalidInput, ResidentErased
from vault.ids import check_resident_id
from vault.inputs import check_known
from vault.ports import Clock
from vault.services.applications import Applications, Viewer
from vault.services.audit import Audit
from vault.services.catalogues import Catalogues
from vault.services.consents import Consents
from vault.services.documents import Documents
from vault.services.fetches import Fetches
from vault.services.policies import Policies
from vault.services.residents import Residents


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_residents(request: Request) -> Residents:
    return _services(request).residents


async def get_documents(request: Request) -> Documents:
    return _services(request).documents


async def get_consents(request: Request) -> Consents:
    return _services(request).consents


async def get_fetches(request: Request) -> Fetches:
    return _services(request).fetches


async def get_policies(request: Request) -> Policies:
    return _services(request).policies


async def get_audit(request: Request) -> Audit:
    return _services(request).audit


async def get_applications(request: Request) -> Applications:
    return _services(request).applications


async def get_catalogues(request: Request) -> Catalogues:
    return _services(request).catalogues


async def get_views(request: Request) -> Views:
    return _services(request).views


async def get_ledger(request: Request) -> Ledger:
    return _services(request).ledger


async def get_clock(request: Request) -> Clock:
    return _services(request).clock


ResidentsDep = Annotated[Residents, Depends(get_residents)]
DocumentsDep = Annotated[Documents, Depends(get_documents)]
ConsentsDep = Annotated[Consents, Depends(get_consents)]
FetchesDep = Annotated[Fetches, Depends(get_fetches)]
PoliciesDep = Annotated[Policies, Depends(get_policies)]
AuditDep = Annotated[Audit, Depends(get_audit)]
ApplicationsDep = Annotated[Applications, Depends(get_applications)]
CataloguesDep = Annotated[Catalogues, Depends(get_catalogues)]
ViewsDep = Annotated[Views, Depends(get_views)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ClockDep = Annotated[Clock, Depends(get_clock)]


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "invalid-token",
        "Not authenticated",
        detail,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def current_principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The principal of the bearer token, as the guard (``adapters.http.guard``) found it
    before anything of the request was read; a request it let through has one."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise _unauthorized("the request was not authenticated")
    if principal.unit is not None:  # a clerk's, a supervisor's, or an officer's
        try:
            check_known("unit", "unit", principal.unit)
        except InvalidInput:
            raise _unauthorized("the token's unit is no unit of the catalogue") from None
    return principal


def _requiring(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if principal.role != role:
            raise Problem(403, "wrong-role", "Forbidden", f"this route is for the {role} role")
        return principal

    return dependency


def resident_even_erased(
    principal: Annotated[Principal, Depends(_requiring("resident"))], residents: ResidentsDep
) -> tuple[str, bool]:
    """The resident of the token, registered on their first request, and whether they are
    erased."""
    try:
        check_resident_id(principal.subject)
    except InvalidInput:
        raise _unauthorized("the token's subject is not a valid resident id") from None
    return principal.subject, residents.register(principal.subject).value.is_erased


def current_resident(
    resident: Annotated[tuple[str, bool], Depends(resident_even_erased)],
) -> str:
    """The resident acting on their own data; an erased resident's token still
    authenticates, but every route but erasure answers 410 Gone."""
    resident_id, erased = resident
    if erased:
        raise ResidentErased(f"resident {resident_id} was erased")
    return resident_id


@dataclass(frozen=True)
class Officer:
    """An officer acting for the department their token names."""

    officer_id: str
    department: str


async def current_officer(
    principal: Annotated[Principal, Depends(_requiring("officer"))],
) -> Officer:
    try:
        department = check_known("dept", "department", principal.department)
    except InvalidInput:
        raise _unauthorized("the token's department is no department of the catalogue") from None
    return Officer(principal.subject, department)


@dataclass(frozen=True)
class AtUnit:
    """A clerk or supervisor acting at the unit their token names."""

    subject: str
    unit: str


def _at_unit(role: Role) -> object:
    requiring = _requiring(role)

    # (A default, not an annotation: annotations are read as text, where ``requiring``,
    # a local name, cannot be found.)
    async def dependency(principal: Principal = Depends(requiring)) -> AtUnit:  # noqa: B008
        try:
            unit = check_known("unit", "unit", principal.unit)
        except InvalidInput:
            raise _unauthorized("the token's unit is no unit of the catalogue") from None
        return AtUnit(principal.subject, unit)

    return dependency


def viewer_of(principal: Principal) -> Viewer:
    """Whoever asks to see an application; the service decides what they may see."""
    return Viewer(principal.role, principal.subject, principal.department, principal.unit)


async def current_viewer(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Viewer:
    return viewer_of(principal)


CurrentResident = Annotated[str, Depends(current_resident)]
CurrentClerk = Annotated[AtUnit, Depends(_at_unit("clerk"))]
CurrentSupervisor = Annotated[AtUnit, Depends(_at_unit("supervisor"))]
CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
ResidentEvenErased = Annotated[tuple[str, bool], Depends(resident_even_erased)]
CurrentOfficer = Annotated[Officer, Depends(current_officer)]
CurrentAuditor = Annotated[Principal, Depends(_requiring("auditor"))]
CurrentCreditPlatform = Annotated[Principal, Depends(_requiring("credit-platform"))]


_MIN_POSITION = (
    "read your writes: answer only once the read models hold this log position (an "
    "X-Log-Position a write answered with), waiting up to CIVICVAULT_READ_WAIT_SECONDS "
    "(then 503 read-models-behind)"
)


async def reached_position(
    request: Request,
    x_min_log_position: Annotated[
        Position, Header(description=_MIN_POSITION + "; 409 if no write has reached it yet"),
    ] = None,
    min_position: Annotated[
        Position, Query(description="the same as X-Min-Log-Position")
    ] = None,
) -> None:
    """Read-your-writes: wait, bounded, until the read models hold the log position asked
    for (the ``X-Log-Position`` a write answered with)."""
    target = max(p for p in (x_min_log_position, min_position, 0) if p is not None)
    if not target:
        return
    services = _services(request)
    head = await run_in_threadpool(services.events.head)
    if target > head:
        raise Problem(
            409, "position-not-reached", "Log position not reached",
            f"no write has reached log position {target} yet (the log is at {head})",
        )
    await _read_models_at(services, target)


async def _read_models_at(services: Services, target: int) -> None:
    """Wait, bounded by CIVICVAULT_READ_WAIT_SECONDS, until the read models hold log
    position ``target``; 503 read-models-behind if they do not in time."""
    wait = services.settings.read_wait_seconds
    if not await run_in_threadpool(services.view_runner.wait_for, target, wait):
        raise Problem(
            503,
            "read-models-behind",
            "Read models behind",
            f"the read models have not reached log position {target} within {wait:g} s",
            headers={"Retry-After": "1"},
        )


Fresh = Annotated[None, Depends(reached_position)]


async def caught_up(request: Request) -> None:
    """Wait, bounded, until the read models hold everything written so far: an application
    takes every material already in the library, whoever uploaded it a moment ago."""
    services = _services(request)
    await _read_models_at(services, await run_in_threadpool(services.events.head))


CaughtUp = Annotated[None, Depends(caught_up)]


def answer_position(response: Response, position: int | None) -> None:
    """Tell the client where its write landed in the log (for read-your-writes), if it
    appended anything."""
    if position is not None:
        response.headers["X-Log-Position"] = str(position)


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


async def catalogue_in_force(request: Request) -> None:
    """Every check of this request reads the catalogue in force: one another process
    published is taken up within a second (off the event loop, when it is due)."""
    catalogues = _services(request).catalogues
    if catalogues.stale():
        await run_in_threadpool(catalogues.current)


async def no_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is a 422 naming it, not ignored: a
    misspelt filter (``?resident=`` for ``?resident_id=``) would otherwise widen a search
    without a word."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _QUERY_NAMES.get(id(route))
    if known is None:
        known = _QUERY_NAMES[id(route)] = _query_names(dependant)
    for name in request.query_params:
        if name not in known:
            raise InvalidInput(
                name[:64] or "query", "is not a parameter of this route"
                + (f" (it takes {', '.join(sorted(known))})" if known else "")
            )
