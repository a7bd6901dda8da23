"""The catalogue every identifier is checked against, for anyone with a valid token."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from adapters.http.deps import current_principal
from keys.tokens import Principal
from policy.catalogue import Named, catalogue

router = APIRouter(prefix="/v1", tags=["catalogue"])


class NamedOut(BaseModel):
    id: str
    name_zh: str
    name_en: str


class UnitOut(NamedOut):
    level: Literal["city", "district", "street", "community"]
    parent: str | None = Field(description="the unit one level up; null for the city")


class DocTypeOut(NamedOut):
    attributes: list[str] = Field(description="what a form may be filled from (反填)")


class ConditionOut(BaseModel):
    zh: str
    en: str


class MaterialOut(BaseModel):
    doc_type: str
    min_trust: Literal["A", "B", "C", "D"]
    key: bool = Field(description="a key material (关键材料) may not be missing at acceptance")
    commitment_allowed: bool = Field(
        description="the resident's signed commitment (告知承诺) may stand in for it"
    )


class StepOut(BaseModel):
    departments: list[str] = Field(description="the departments reviewing side by side")
    order: int = Field(description="1 for the first step")


class FormFieldOut(BaseModel):
    field: str
    name_zh: str
    name_en: str
    source: str = Field(description="`doc_type.attribute` the field is filled from (反填)")


class ServiceOut(NamedOut):
    department: str = Field(description="the department that owns the service")
    category: str
    accepted_at: list[str] = Field(
        description="unit levels, unit ids, or `city-wide` (全市通办: any window of the city)"
    )
    conditions: list[ConditionOut]
    materials: list[MaterialOut]
    doc_types: list[str] = Field(description="the document types of its materials, in order")
    time_limit_days: int = Field(description="the promised time limit, in working days")
    statutory_days: int = Field(description="the time limit the law sets, in working days")
    steps: list[StepOut] = Field(description="back-office review (后台协同), in order")
    form: list[FormFieldOut]
    issues: str = Field(description="the document type issued on approval")


class CatalogueOut(BaseModel):
    version: str = Field(description="SHA-256 of the catalogue file (lower-case hex)")
    units: list[UnitOut]
    departments: list[NamedOut]
    document_types: list[DocTypeOut]
    categories: list[NamedOut]
    services: list[ServiceOut]
    tracks: list[NamedOut]


def _named(entry: Named) -> NamedOut:
    return NamedOut(id=entry.id, name_zh=entry.name_zh, name_en=entry.name_en)


@router.get("/catalogue")
def get_catalogue(principal: Annotated[Principal, Depends(current_principal)]) -> CatalogueOut:
    """Every unit, department, document type, service and fast-track track the vault knows,
    with its names in Chinese and English, and each service as standardised (事项标准化);
    a request naming anything else is refused (422)."""
    found = catalogue()
    return CatalogueOut(
        version=found.version,
        units=[
            UnitOut(**_named(u).model_dump(), level=u.level, parent=u.parent)
            for u in found.units()
        ],
        departments=[_named(e) for e in found.of_kind("department")],
        document_types=[
            DocTypeOut(**_named(d).model_dump(), attributes=list(d.attributes))
            for d in found.doc_types()
        ],
        categories=[_named(e) for e in found.of_kind("category")],
        services=[
            ServiceOut(
                **_named(s).model_dump(),
                department=s.department,
                category=s.category,
                accepted_at=list(s.accepted_at),
                conditions=[ConditionOut(zh=c.zh, en=c.en) for c in s.conditions],
                materials=[
                    MaterialOut(doc_type=m.doc_type, min_trust=m.min_trust.value, key=m.key,
                                commitment_allowed=m.commitment_allowed)
                    for m in s.materials
                ],
                doc_types=list(s.needs),
                time_limit_days=s.time_limit_days,
                statutory_days=s.statutory_days,
                steps=[
                    StepOut(departments=list(step.departments), order=order)
                    for order, step in enumerate(s.steps, 1)
                ],
                form=[
                    FormFieldOut(field=f.field, name_zh=f.name_zh, name_en=f.name_en,
                                 source=f.source)
                    for f in s.form
                ],
                issues=s.issues,
            )
            for s in found.services()
        ],
        tracks=[_named(e) for e in found.of_kind("track")],
    )
