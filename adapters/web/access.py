"""谁用了我的材料: a resident's access log — every access to their data, allowed and
denied, newest first, paged as the API's ``/v1/me/access-log`` — each entry with a badge
the browser checks itself (``static/js/access.js``: the entry's leaf hashed with SubtleCrypto,
its inclusion path walked to the signed checkpoint's root, the checkpoint's Ed25519
signature checked with the key ``/.well-known/checkpoint-keys.json`` publishes) and its
evidence bundle to download.

The script reads each entry's proof from ``/me/access/{event}/proof``: the session's own
entry, as the API's access log gives it (the same query and :func:`logged_accesses`); the
bundle from ``/me/access/{event}/evidence`` is a ``civicvault-evidence/1`` bundle of that
one entry (as ``civicvault audit export`` writes them, ``audit verify-bundle`` checks them),
proven against the same checkpoint. An entry is named by its event (its log position, the
leaf ``event - 1``); another resident's event, or no entry's, is 404.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from adapters.http.access_log import logged_accesses
from adapters.http.deps import ApplicationsDep, ClockDep, LedgerDep, ResidentsDep, ViewsDep
from adapters.http.paging import decode_cursor, paged
from adapters.http.problems import status_of
from adapters.web.deps import SigningDep
from adapters.web.pages import (
    SECURITY_HEADERS,
    catalogue_names,
    error_page,
    render,
    see_other,
    signed_in,
    whole_number,
)
from adapters.web.sessions import Session
from keys.signing import SigningKeys
from projections.evidence import build_bundle
from projections.ledger import Ledger
from projections.queries import AccessEntry, Views
from vault.application import Application
from vault.errors import AccessNotFound, InvalidInput, ResidentErased, VaultError
from vault.ids import check_resident_id
from vault.ports import Clock
from vault.services.applications import Applications
from vault.services.residents import Residents

router = APIRouter(include_in_schema=False)
PAGE = 20
"""Entries a page shows (the API's default is 50; a page checks each one in the browser)."""
_RECENT_APPLICATIONS = 100
"""How many of the resident's newest applications may explain an entry's consent."""


def _resident(session: Session, residents: Residents) -> str:
    """The session's resident, as the API's ``CurrentResident`` takes them: registered, and
    not erased (:class:`ResidentErased`, 410, as the API answers)."""
    resident_id = session.principal.subject
    check_resident_id(resident_id)
    if residents.register(resident_id).value.is_erased:
        raise ResidentErased(f"resident {resident_id} was erased")
    return resident_id


def _entry(views: Views, resident_id: str, event: str) -> AccessEntry | None:
    """The resident's own entry at ``event``, read with the API's query and cursor (the
    newest of theirs before ``event + 1``); None when it is not theirs, or none at all."""
    try:
        position = whole_number("event", event, minimum=1)
    except InvalidInput:
        return None
    found = views.access_log(resident_id, limit=1, before=position + 1)
    return found[0] if found and found[0].position == position else None



def _served(
    entries: list[AccessEntry], resident_id: str, views: Views, applications: Applications
) -> dict[str, Application]:
    """The application each entry served, where it served one: named in its request (an
    issue on approval), or under one of an application's own consents (a reviewer's read)."""
    loaded: dict[str, Application | None] = {}

    def load(application_id: str) -> Application | None:
        if application_id not in loaded:
            try:
                found: Application | None = applications.application(application_id)
            except VaultError:
                found = None
            loaded[application_id] = (
                found if found is not None and found.resident_id == resident_id else None
            )
        return loaded[application_id]

    served: dict[str, Application] = {}
    under_consent = [e for e in entries if e.consent_id and e.purpose]
    candidates = (
        [a for a in views.applications(resident_id, limit=_RECENT_APPLICATIONS)
         if a.service_id in {e.purpose for e in under_consent}]
        if under_consent else []
    )
    for entry in entries:
        named = entry.request_id.removeprefix("application:")
        if named != entry.request_id and (application := load(named)) is not None:
            served[entry.access_id] = application
            continue
        for candidate in candidates:
            if candidate.service_id != entry.purpose:
                continue
            application = load(candidate.application_id)
            if application is not None and entry.consent_id in application.consent_ids:
                served[entry.access_id] = application
                break
    return served


@router.get("/me/access")
def access_page(
    request: Request, views: ViewsDep, ledger: LedgerDep, residents: ResidentsDep,
    applications: ApplicationsDep, cursor: str | None = None,
) -> Response:
    """谁用了我的材料: every access to the resident's data, newest first, a page at a time."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    try:
        resident_id = _resident(session, residents)
        before = decode_cursor(cursor)
        entries, next_cursor = paged(
            views.access_log(resident_id, limit=PAGE + 1, before=before), PAGE
        )
        checkpoint = ledger.latest_checkpoint()
        served = _served(entries, resident_id, views, applications)
    except VaultError as e:
        return error_page(request, session, e)
    return render(
        request, "me_access.html", session=session, entries=entries, next_cursor=next_cursor,
        first_page=before is None, served=served,
        signed_size=checkpoint.tree_size if checkpoint else 0, resident_id=resident_id,
        **catalogue_names(),
    )


@router.get("/me/access/{event}/proof")
def proof(
    request: Request, event: str, views: ViewsDep, ledger: LedgerDep, residents: ResidentsDep
) -> Response:
    """The entry as the API's access log gives it — its leaf and inclusion proof in the
    latest checkpoint, and that checkpoint — for the page's script to check (JSON)."""
    session = signed_in(request, "resident")
    if session is None:
        return _json({"detail": "not signed in"}, 401)
    try:
        resident_id = _resident(session, residents)
    except VaultError as e:
        return _json({"detail": str(e)}, status_of(e))
    entry = _entry(views, resident_id, event)
    if entry is None:
        return _json({"detail": "no such entry"}, 404)
    return _json(logged_accesses([entry], ledger).model_dump(mode="json"), 200)


@router.get("/me/access/{event}/evidence")
def evidence(
    request: Request, event: str, views: ViewsDep, ledger: LedgerDep, residents: ResidentsDep,
    signing: SigningDep, clock: ClockDep,
) -> Response:
    """The entry's evidence bundle (``civicvault-evidence/1``), signed, as a file: its
    stored record, its inclusion proof and the checkpoint that covers it."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    try:
        resident_id = _resident(session, residents)
        entry = _entry(views, resident_id, event)
        if entry is None:
            raise AccessNotFound(f"no entry {event} in your access log")
        bundle = _bundle(ledger, signing, clock, entry)
    except VaultError as e:
        return error_page(request, session, e)
    if bundle is None:
        return render(request, "me_access_unsigned.html", status=409, session=session)
    body = json.dumps(bundle, ensure_ascii=False, indent=1).encode()
    return Response(body, media_type="application/json", headers={
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="civicvault-evidence-{entry.position}.json"',
    })


def _bundle(
    ledger: Ledger, signing: SigningKeys, clock: Clock, entry: AccessEntry
) -> dict[str, Any] | None:
    """One entry's bundle against the latest checkpoint; None while no checkpoint covers it."""
    checkpoint = ledger.latest_checkpoint()
    if checkpoint is None or entry.position > checkpoint.tree_size:
        return None
    key = signing.current("checkpoints")
    return build_bundle(
        resident_id=entry.resident_id, since=None, until=None, entries=[entry],
        checkpoint=checkpoint, proofs=ledger.inclusions([entry.position], checkpoint.tree_size),
        leaves=ledger.records([entry.position]),
        sign=lambda message: (key.kid, key.private_key.sign(message)),
        now=clock.now(),
    )


def _json(body: Any, status: int) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=SECURITY_HEADERS)
