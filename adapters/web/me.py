"""我的证照 and the rest of a resident's own pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from adapters.http.deps import ViewsDep
from adapters.web.pages import render, see_other, signed_in
from policy.catalogue import catalogue
from vault.ids import check_resident_id

router = APIRouter(include_in_schema=False)


@router.get("/me")
def my_library(request: Request, views: ViewsDep) -> Response:
    """我的证照: the resident's library as cards."""
    session = signed_in(request, "resident")
    if session is None:
        return see_other("/signin")
    resident_id = session.principal.subject
    check_resident_id(resident_id)
    documents = views.library(resident_id, limit=200)
    names = {t.id: t for t in catalogue().doc_types()}
    issuers = {d.id: d for d in catalogue().of_kind("department")}
    return render(request, "me.html", session=session, documents=documents,
                   doc_types=names, issuers=issuers)
