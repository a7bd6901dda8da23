"""Field types for what arrives over HTTP, stricter than pydantic's lax defaults: a time is
an RFC 3339 date-time with its offset (never seconds since the epoch, never a bare date),
and a number in a query or header is plain decimal digits (never ``1.0``, ``+1`` or
``1_000``)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema

from policy.catalogue import Kind
from vault.errors import InvalidInput
from vault.ids import RESIDENT_ID_PATTERN, UUID_PATTERN
from vault.inputs import MAX_TITLE, RFC3339_PATTERN, parse_rfc3339, printable_text_pattern

_DIGITS = re.compile(r"[0-9]{1,18}")
MAX_WHOLE = 10**18 - 1


def _instant(value: object) -> datetime:
    if isinstance(value, datetime):  # already parsed, e.g. a default
        return value
    try:
        return parse_rfc3339("", value)
    except InvalidInput as e:
        raise PydanticCustomError("rfc3339", e.problem) from None


@dataclass(frozen=True)
class WholeBetween:
    """Marks a query or header value as a whole number from ``minimum`` to ``maximum``,
    written in decimal digits, and documents it as exactly that."""

    minimum: int = 0
    maximum: int = MAX_WHOLE

    def check(self, value: object) -> int | None:
        if value is None:
            return None  # left out, where that is allowed
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _DIGITS.fullmatch(value):
            number = int(value)
        if number is None or not self.minimum <= number <= self.maximum:
            raise PydanticCustomError(
                "digits",
                f"must be a whole number from {self.minimum} to {self.maximum}, in digits",
            )
        return number

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


_DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _day(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    if not isinstance(value, str) or not re.fullmatch(_DAY_PATTERN.strip("^$"), value):
        raise PydanticCustomError("day", "must be a day written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("day", "is no day of the calendar") from None


OptionalDay = Annotated[
    date | None,
    BeforeValidator(_day),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _DAY_PATTERN}),
]
"""A day (YYYY-MM-DD) in a query that may be left out."""

_INSTANT_SCHEMA = {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}
Instant = Annotated[datetime, BeforeValidator(_instant), WithJsonSchema(_INSTANT_SCHEMA)]
OptionalInstant = Annotated[
    datetime | None, BeforeValidator(_instant), WithJsonSchema(_INSTANT_SCHEMA)
]
"""A time in a query that may be left out."""
Position = Annotated[int | None, WholeBetween()]
"""A log position, e.g. X-Min-Log-Position (left out: none)."""


def _integral(value: object) -> object:
    """A JSON number with no fraction as the integer it is (JSON Schema's "integer" takes
    5.0); anything else as it came, for the strict check to refuse ``"5"``, true or 5.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(_integral)]
"""An integer field of a JSON body: 5 or 5.0, never ``"5"``, true or 5.5."""


@contextmanager
def named_as_sent(names: Mapping[str, str]) -> Iterator[None]:
    """Name a field the vault refuses (:class:`InvalidInput`) as the request named it
    (``{"valid_until": "expires_at"}``): a 422 names what the caller sent."""
    try:
        yield
    except InvalidInput as e:
        if e.field not in names:
            raise
        raise InvalidInput(names[e.field], e.problem) from None


class StrictIn(BaseModel):
    """A JSON body: every field of its declared JSON type (no ``"5"`` for 5, no ``1`` for
    true) and no field the API does not name."""

    model_config = ConfigDict(extra="forbid", strict=True)


CATALOGUE_MARK = "x-catalogue"
"""Marks the schema of an id of the catalogue; the OpenAPI document lists the ids of the
catalogue in force there (``adapters.http.contract``)."""


def _catalogue_ids(kind: Kind) -> dict[str, Any]:
    """The JSON Schema of an id of ``kind``: one of the catalogue's (checked by the
    services themselves, 422 naming the field)."""
    return {CATALOGUE_MARK: kind}


def _printable(max_length: int) -> dict[str, Any]:
    return {"maxLength": max_length, "pattern": printable_text_pattern()}


ResidentIdPath = Annotated[
    str, Path(pattern=RESIDENT_ID_PATTERN, description="the resident's id, e.g. zhang-wei")
]
ResidentIdQuery = Annotated[
    str, Query(pattern=RESIDENT_ID_PATTERN, description="the resident's id, e.g. zhang-wei")
]
DocumentIdPath = Annotated[str, Path(pattern=UUID_PATTERN, description="a document's id")]
ConsentIdPath = Annotated[str, Path(pattern=UUID_PATTERN, description="a consent's id")]
ServicePath = Annotated[
    str, Path(json_schema_extra=_catalogue_ids("service"), description="a service id")
]
PurposeQuery = Annotated[
    str,
    Query(json_schema_extra=_catalogue_ids("service"),
          description="the service the documents are for, e.g. subsistence-allowance"),
]
DEPARTMENT_IDS = _catalogue_ids("department")
UNIT_IDS = _catalogue_ids("unit")
DocTypePath = Annotated[
    str, Path(json_schema_extra=_catalogue_ids("doc_type"), description="a document type id")
]
OptionalResidentId = Annotated[
    str | None,
    Query(pattern=RESIDENT_ID_PATTERN),
    WithJsonSchema({"type": "string", "pattern": RESIDENT_ID_PATTERN}),
]
OptionalDepartment = Annotated[
    str | None, Query(), WithJsonSchema({"type": "string", **DEPARTMENT_IDS})
]
DepartmentField = Field(json_schema_extra=DEPARTMENT_IDS,
                        description="a department id of GET /v1/catalogue")
ServiceField = Field(json_schema_extra=_catalogue_ids("service"),
                     description="a service id of GET /v1/catalogue")
DocTypesField = Field(
    min_length=1,
    json_schema_extra={"items": {"type": "string", **_catalogue_ids("doc_type")},
                       "uniqueItems": True},
    description="document type ids of GET /v1/catalogue, each once",
)
DOC_TYPE_SCHEMA = {"type": "string", **_catalogue_ids("doc_type")}
TITLE_SCHEMA = {"type": "string", **_printable(MAX_TITLE)}
REASON_MAX = 500
ReasonField = Field(
    min_length=1, max_length=REASON_MAX,
    json_schema_extra={"pattern": printable_text_pattern()}, description="why",
)
