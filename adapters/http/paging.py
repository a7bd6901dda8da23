"""Pages of lists: ``?limit=N&cursor=C`` in, ``{"items": [...], "next_cursor": C or null}``
out. A cursor is the log position of the last item shown, so writes in between never make a
page skip or repeat an item."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Annotated, Generic, Protocol, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from adapters.http.fields import Whole
from vault.errors import InvalidInput

T = TypeVar("T")


class Positioned(Protocol):
    @property
    def position(self) -> int: ...


E = TypeVar("E", bound=Positioned)
MAX_PAGE = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null at the end"
    )


Limit = Annotated[Whole, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(max_length=200)]


def paged(entries: Sequence[E], limit: int) -> tuple[list[E], str | None]:
    """A page of entries fetched ``limit + 1`` at a time, and the cursor for the next page:
    the log position of the last entry shown (so writes in between never skip or repeat)."""
    if len(entries) <= limit:
        return list(entries), None
    shown = list(entries[:limit])
    return shown, encode_cursor(shown[-1].position)


MAX_POSITION = 2**63 - 1
"""The largest log position: the databases keep positions as 64-bit integers."""


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"p": position}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded))["p"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidInput("cursor", "is not a cursor this API gave out") from None
    if (
        not isinstance(position, int)
        or isinstance(position, bool)
        or not 0 <= position <= MAX_POSITION
    ):
        raise InvalidInput("cursor", "is not a cursor this API gave out")
    return position
