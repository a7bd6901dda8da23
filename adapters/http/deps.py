"""Declared dependencies: the vault, and the principal each route requires."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from adapters.http.problems import Problem
from keys.tokens import InvalidToken, Principal, Role, TokenVerifier
from projections.ledger import Ledger
from projections.queries import Views
from vault.app import Vault
from vault.errors import InvalidInput, ResidentErased
from vault.ids import check_identifier, check_resident_id


async def get_vault(request: Request) -> Vault:
    vault: Vault = request.app.state.services.vault
    return vault


VaultDep = Annotated[Vault, Depends(get_vault)]


async def get_views(request: Request) -> Views:
    views: Views = request.app.state.services.views
    return views


ViewsDep = Annotated[Views, Depends(get_views)]


async def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.services.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


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
    """The principal of the bearer token; any doubt about the token is a 401."""
    if not authorization:
        raise Problem(
            401, "missing-token", "Not authenticated", "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("use the Bearer scheme")
    verifier: TokenVerifier = request.app.state.verifier
    try:
        principal = verifier.verify(token.strip())
    except InvalidToken as e:
        request.state.auth_failure = str(e)
        raise _unauthorized("the token is not valid") from None
    request.state.role = principal.role
    return principal


def _requiring(role: Role) -> object:
    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if principal.role != role:
            raise Problem(
                403, "wrong-role", "Forbidden", f"this route is for the {role} role"
            )
        return principal

    return dependency


def current_resident(
    principal: Annotated[Principal, Depends(_requiring("resident"))], vault: VaultDep
) -> str:
    """The resident acting on their own data, registered on their first request; an erased
    resident's token still authenticates, but every route answers 410 Gone."""
    try:
        check_resident_id(principal.subject)
    except InvalidInput:
        raise _unauthorized("the token's subject is not a valid resident id") from None
    if vault.register_resident(principal.subject).is_erased:
        raise ResidentErased(f"resident {principal.subject} was erased")
    return principal.subject


@dataclass(frozen=True)
class Officer:
    """An officer acting for the department their token names."""

    officer_id: str
    department: str


async def current_officer(
    principal: Annotated[Principal, Depends(_requiring("officer"))],
) -> Officer:
    try:
        department = check_identifier("dept", principal.department)
    except InvalidInput:
        raise _unauthorized("the token's department is not a valid department id") from None
    return Officer(principal.subject, department)


CurrentResident = Annotated[str, Depends(current_resident)]
CurrentOfficer = Annotated[Officer, Depends(current_officer)]
CurrentAuditor = Annotated[Principal, Depends(_requiring("auditor"))]
CurrentCreditPlatform = Annotated[Principal, Depends(_requiring("credit-platform"))]


async def reached_position(
    request: Request,
    x_min_log_position: Annotated[int | None, Header(ge=0)] = None,
    min_position: Annotated[int | None, Query(ge=0)] = None,
) -> None:
    """Read-your-writes: wait, bounded, until the read models hold the log position asked
    for (the ``X-Log-Position`` a write answered with)."""
    target = max(p for p in (x_min_log_position, min_position, 0) if p is not None)
    if not target:
        return
    services = request.app.state.services
    head = await run_in_threadpool(services.vault.recorder.max_notification_id)
    if target > (head or 0):
        raise InvalidInput("X-Min-Log-Position", f"no write has reached log position {target}")
    wait = services.settings.read_wait_seconds
    if not await run_in_threadpool(services.view_runner.wait_for, target, wait):
        raise Problem(
            503, "read-models-behind", "Read models behind",
            f"the read models have not reached log position {target} within {wait:g} s",
            headers={"Retry-After": "1"},
        )


Fresh = Annotated[None, Depends(reached_position)]


def mark_position(response: Response, vault: Vault) -> None:
    """Tell the client where its write landed in the log (call in the thread that wrote)."""
    position = vault.take_position()
    if position is not None:
        response.headers["X-Log-Position"] = str(position)
