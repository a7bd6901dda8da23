"""Reading JSON strictly, the one way every JSON input is read: the guard's check of a JSON
body, a supplement's JSON body, an upload's ``attributes`` field.

Each object's keys once (two parsers may keep different ones of a repeated key), no NaN or
Infinity, and nesting no deeper than :data:`MAX_DEPTH` — counted before parsing, so that
the parser never recurses into a RecursionError however deep the text nests.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
"""How deep arrays and objects may nest: far beyond any request of the API."""

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


class NotStrictJson(ValueError):
    """JSON text that is refused: a repeated key, NaN or Infinity, or nesting too deep."""


def is_json_media(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` says JSON (``application/json`` or any ``+json``)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def loads_strict(text: bytes | str) -> Any:
    """Parse JSON text strictly. Raises :class:`NotStrictJson` for what is refused, and
    another ``ValueError`` (``json.JSONDecodeError``) for text that is not JSON at all."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _too_deep(raw):
        raise NotStrictJson(f"the JSON nests deeper than {MAX_DEPTH}")
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_not_a_number)


def _too_deep(raw: bytes) -> bool:
    depth = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub(b'""', raw)):
        if bracket[0] in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise NotStrictJson(f"the JSON object names {key[:64]!r} twice")
        seen[key] = value
    return seen


def _not_a_number(constant: str) -> None:
    raise NotStrictJson(f"{constant} is not JSON")
