"""A page's form is read bounded (signing in is open to anyone), and a number typed into
a page is read as strictly as the API reads one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from adapters.web.pages import FORM_BYTES, read_form, whole_number
from vault.errors import InvalidInput


def test_a_pages_form_is_read_bounded_before_anyone_is_known() -> None:
    """Signing in is open to anyone: a body larger than a form stops being read at the
    form's bound, and reads as no form at all."""
    sent: list[int] = []

    async def receive() -> dict[str, Any]:
        sent.append(1)
        return {"type": "http.request", "body": b"x" * 4096, "more_body": len(sent) < 25_000}

    scope = {"type": "http", "method": "POST", "path": "/signin/persona", "headers": [
        (b"content-type", b"application/x-www-form-urlencoded")]}
    form = asyncio.run(read_form(Request(scope, receive)))
    assert form == {}
    assert len(sent) * 4096 <= FORM_BYTES + 4096  # not the 100 MB offered


@pytest.mark.parametrize("typed", [
    "²", "١٢", "１２", "12²", "", " 1", "1 ", "+1", "-1", "1_000", "1.0", "0x1",
    "9" * 19, "5" * 5000,
])
def test_a_number_typed_into_a_page_is_ascii_digits_bounded_or_refused(typed: str) -> None:
    """Unicode digits pass ``str.isdigit`` (and ``int`` reads ``١٢`` as 12, chokes on ``²``
    and on 5,000 digits): a page reads a number as the API does, or refuses it by name."""
    with pytest.raises(InvalidInput) as refused:
        whole_number("max_uses", typed)
    assert refused.value.field == "max_uses"


def test_a_number_typed_into_a_page_is_read_within_its_range() -> None:
    assert whole_number("score", "5", 1, 5) == 5
    assert whole_number("before", "007") == 7
    assert whole_number("before", "9" * 18) == 10**18 - 1
    for outside in ("0", "6"):
        with pytest.raises(InvalidInput):
            whole_number("score", outside, 1, 5)
