"""The catalogue every identifier is checked against, for anyone with a valid token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from adapters.http.deps import current_principal
from keys.tokens import Principal
from policy.catalogue import Entry, catalogue

router = APIRouter(prefix="/v1", tags=["catalogue"])


class NamedOut(BaseModel):
    id: str
    name_zh: str
    name_en: str


class ServiceOut(NamedOut):
    department: str = Field(description="the department that owns the service")
    doc_types: list[str] = Field(description="the document types the service needs")


class CatalogueOut(BaseModel):
    departments: list[NamedOut]
    document_types: list[NamedOut]
    services: list[ServiceOut]
    tracks: list[NamedOut]


def _named(entry: Entry) -> NamedOut:
    return NamedOut(id=entry.id, name_zh=entry.name_zh, name_en=entry.name_en)


@router.get("/catalogue")
def get_catalogue(principal: Annotated[Principal, Depends(current_principal)]) -> CatalogueOut:
    """Every department, document type, service and fast-track track the vault knows, with
    its names in Chinese and English; a request naming any other is refused (422)."""
    found = catalogue()
    return CatalogueOut(
        departments=[_named(e) for e in found.of_kind("department")],
        document_types=[_named(e) for e in found.of_kind("doc_type")],
        services=[
            ServiceOut(**_named(e).model_dump(), department=e.owner or "", doc_types=list(e.needs))
            for e in found.of_kind("service")
        ],
        tracks=[_named(e) for e in found.of_kind("track")],
    )
