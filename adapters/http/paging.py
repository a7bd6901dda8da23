"""Pages of lists: ``?limit=N&cursor=C`` in, ``{"items": [...], "next_cursor": C or null}``
out. A cursor is the log position of the last item shown, so writes in between never make a
page skip or repeat an item."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Generic, Protocol, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from adapters.http.fields import WholeBetween
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


Limit = Annotated[int, WholeBetween(1, MAX_PAGE), Query(description=f"at most {MAX_PAGE}")]
CURSOR_PATTERN = r"^[0-9]{1,18}$"
Cursor = Annotated[
    str | None,
    Query(pattern=CURSOR_PATTERN, description="the next_cursor of the page before"),
]


def paged(entries: Sequence[E], limit: int) -> tuple[list[E], str | None]:
    """A page of entries fetched ``limit + 1`` at a time, and the cursor for the next page:
    the log position of the last entry shown (so writes in between never skip or repeat)."""
    if len(entries) <= limit:
        return list(entries), None
    shown = list(entries[:limit])
    return shown, encode_cursor(shown[-1].position)


def encode_cursor(position: int) -> str:
    """A page's cursor: the log position of its last entry, in decimal digits."""
    return str(position)


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    if not re.fullmatch(CURSOR_PATTERN.strip("^$"), cursor):
        raise InvalidInput("cursor", "is not a cursor this API gave out")
    return int(cursor)
