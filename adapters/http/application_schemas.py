"""What the applications' routes read and write (办件), and how an application is shown to
whom: the resident, its reviewers and the clerk's unit see its form; a supervisor, who
watches time limits rather than people, sees it without the form's values."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from adapters.http.fields import (
    DOC_TYPE_SCHEMA,
    ReasonField,
    ServiceField,
    StrictIn,
    Whole,
)
from policy.catalogue import display_name
from vault.application import Application
from vault.ids import RESIDENT_ID_PATTERN
from vault.inputs import printable_text_pattern
from vault.markers import Erased
from vault.services.applications import Timing
from vault.supervision import Figures

DocTypes = Annotated[
    list[str],
    Field(default_factory=list, max_length=20,
          json_schema_extra={"items": DOC_TYPE_SCHEMA, "uniqueItems": True},
          description="document type ids of GET /v1/catalogue, each once"),
]
FormIn = Annotated[
    dict[str, Annotated[str, Field(max_length=500,
                                   json_schema_extra={"pattern": printable_text_pattern()})]],
    Field(default_factory=dict, max_length=50,
          description="form fields of the service (GET /v1/catalogue), each a text; "
          "fields left out are filled from the library where the catalogue says so (反填)"),
]


class CodeIn(StrictIn):
    service_id: str = ServiceField


class CodeOut(BaseModel):
    code: str = Field(description="8 characters to tell the window clerk; one use")
    expires_at: datetime


class OnlineApplicationIn(StrictIn):
    service_id: str = ServiceField
    form: FormIn
    missing: DocTypes = Field(
        description="materials accepted as missing, to supply later (容缺): only non-key "
        "ones, where the resident's tracks include missing-allowed",
    )
    commitments: DocTypes = Field(
        description="materials the resident's signed commitment stands in for (告知承诺): "
        "only where the service allows it for the material and the resident's tracks "
        "include commitment; recorded as trust level D",
    )


class WindowApplicationIn(OnlineApplicationIn):
    resident_id: str = Field(pattern=RESIDENT_ID_PATTERN, max_length=64)
    authorization_code: str = Field(
        min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+$",
        description="the code the resident made in their own session",
    )


class DecisionIn(StrictIn):
    decision: Literal["approve", "return", "reject"]
    reason: str = ReasonField
    materials: DocTypes = Field(
        description="with return: the materials the resident is to supply (补正)"
    )


class SupplementIn(StrictIn):
    doc_type: str = Field(json_schema_extra=DOC_TYPE_SCHEMA)
    document_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$",
                             description="a document of the resident's library")


class CommitmentIn(StrictIn):
    doc_type: str = Field(
        json_schema_extra=DOC_TYPE_SCHEMA,
        description="a material the application was accepted without (容缺), which the "
        "resident's signed commitment is to replace (告知承诺)",
    )


class RatingIn(StrictIn):
    score: Whole = Field(ge=1, le=5, description="1 (very poor) to 5 (very good) (好差评)")
    comment: str | None = Field(default=None, max_length=500,
                                json_schema_extra={"pattern": printable_text_pattern()})


class MaterialOut(BaseModel):
    doc_type: str
    source: Literal["library", "window", "supplement", "commitment", "missing"]
    document_id: str | None
    trust_level: Literal["A", "B", "C", "D"] | None
    due_at: datetime | None = Field(description="for one accepted as missing: supply it by then")
    statement: str | None = Field(
        default=None, description="for a commitment: the words the resident committed to",
    )


class FormValueOut(BaseModel):
    value: str | None = Field(description="null once the resident is erased, or to a supervisor")
    source: str = Field(
        description="`resident` or `clerk` (typed in), the `doc_type.attribute` of an attached "
        "document, or `application:NUMBER` (an earlier application) it was filled from (反填)"
    )
    document_id: str | None = Field(default=None, description="the document it came from")
    replaced_value: str | None = Field(
        default=None, description="what was filled in before the resident or clerk changed it",
    )
    replaced_source: str | None = Field(default=None, description="where that came from")


class StepOut(BaseModel):
    departments: list[str]
    status: Literal["waiting", "approved", "returned", "rejected"]
    approved_by: list[str] = Field(description="the departments that have approved it")
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None = Field(description="the last decision's reason; null once erased")


class RatingOut(BaseModel):
    score: int
    comment: str | None
    at: datetime


class ApplicationOut(BaseModel):
    application_id: str
    number: str = Field(description="the number people quote (受理编号)")
    service_id: str
    service_name: str
    department: str = Field(description="the department that owns the service")
    resident_id: str
    channel: Literal["online", "window"]
    unit: str | None = Field(description="the window's unit; null online")
    status: Literal["accepted", "in-review", "returned", "approved", "rejected", "withdrawn"]
    tracks: list[str]
    consent_ids: list[str] = Field(description="the consents made for it, one per department")
    materials: list[MaterialOut]
    asked_for: list[str] = Field(description="what the resident is asked to supply (补正)")
    form: dict[str, FormValueOut]
    steps: list[StepOut]
    waiting_on: list[str] = Field(description="the departments it waits on now")
    accepted_at: datetime
    time_limit_days: int = Field(description="promised, in working days")
    due_at: datetime | None = Field(description="null while the clock stands still")
    clock: Literal["on-time", "warning", "overdue", "paused"] | None = Field(
        description="null once decided or withdrawn"
    )
    on_time: bool | None = Field(description="once decided: whether by its due moment")
    due_is_estimate: bool = Field(
        description="the calendar does not know a year the limit runs into yet"
    )
    decided_at: datetime | None
    result_document_id: str | None
    rating: RatingOut | None


class AcceptedOut(ApplicationOut):
    consent_receipts: list[str] = Field(
        description="the signed receipt (compact JWS, EdDSA) of each consent made for it, "
        "in the order of consent_ids: the resident's to keep"
    )


class FiguresOut(BaseModel):
    key: str = Field(description="the unit, department or service; the first row is the "
                     "supervisor's unit as a whole; `online` for what no window took")
    accepted: int
    decided: int
    on_time_rate: float | None
    avg_working_days: float | None
    overdue: int
    materials_reused: int
    materials_brought: int
    trips_saved: int
    rating_avg: float | None


def application_out(
    application: Application, timing: Timing, *, with_form: bool = True
) -> ApplicationOut:
    rating = application.rating
    return ApplicationOut(
        application_id=str(application.id), number=application.number,
        service_id=application.service_id,
        service_name=display_name("service", application.service_id),
        department=application.department, resident_id=application.resident_id,
        channel="window" if application.channel == "window" else "online",
        unit=application.unit, status=application.status.value,
        tracks=list(application.tracks), consent_ids=list(application.consent_ids),
        materials=[MaterialOut(**m) for m in application.materials],
        asked_for=list(application.asked_for),
        form={
            name: FormValueOut(
                value=_shown(v["value"]) if with_form else None, source=v["source"],
                document_id=v.get("document_id"),
                replaced_value=_shown(v.get("replaced_value")) if with_form else None,
                replaced_source=v.get("replaced_source"),
            )
            for name, v in application.form.items()
        } if not isinstance(application.form, Erased) else {},
        steps=[
            StepOut(departments=list(s.departments), status=s.status,
                    approved_by=sorted(s.approved_by), decided_by=s.decided_by,
                    decided_at=s.decided_at, reason=_shown(s.reason))
            for s in application.steps
        ],
        waiting_on=list(application.waiting_on), accepted_at=application.accepted_at,
        time_limit_days=application.time_limit_days, due_at=timing.due_at,
        clock=timing.clock, on_time=timing.on_time, due_is_estimate=timing.estimate,
        decided_at=application.decided_at,
        result_document_id=application.result_document_id,
        rating=RatingOut(score=rating[0], comment=_shown(rating[1]), at=rating[2])
        if rating else None,
    )


def figures_out(figures: Figures) -> FiguresOut:
    return FiguresOut(**vars(figures))


def _shown(value: object) -> str | None:
    return value if isinstance(value, str) else None
