"""Field types for what arrives over HTTP, stricter than pydantic's lax defaults: a time is
an RFC 3339 date-time with its offset (never seconds since the epoch, never a bare date),
and a number in a query or header is plain decimal digits (never ``1.0``, ``+1`` or
``1_000``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema
from pydantic_core import PydanticCustomError

from vault.errors import InvalidInput
from vault.inputs import parse_rfc3339

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_DIGITS = re.compile(r"[0-9]{1,18}")


def _instant(value: object) -> datetime:
    if isinstance(value, datetime):  # already parsed, e.g. a default
        return value
    try:
        return parse_rfc3339("", value)
    except InvalidInput as e:
        raise PydanticCustomError("rfc3339", e.problem) from None


def _whole(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise PydanticCustomError("digits", "must be a whole number written in decimal digits")


Instant = Annotated[
    datetime,
    BeforeValidator(_instant),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]
Whole = Annotated[int, BeforeValidator(_whole)]


class StrictIn(BaseModel):
    """A JSON body: every field of its declared JSON type (no ``"5"`` for 5, no ``1`` for
    true) and no field the API does not name."""

    model_config = ConfigDict(extra="forbid", strict=True)
