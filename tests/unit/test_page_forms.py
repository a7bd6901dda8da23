"""A page's form is read bounded: signing in is open to anyone."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from adapters.web.pages import FORM_BYTES, read_form


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
