"""Display names: departments, document types, services and tracks in Chinese and English.

The identifiers in policies, events and the API are lower-case ASCII; people
read the names in ``catalogue.csv`` beside them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Literal

Kind = Literal["department", "doc_type", "service", "track"]


@dataclass(frozen=True)
class Entry:
    kind: Kind
    id: str
    name_zh: str
    name_en: str


@cache
def catalogue() -> dict[tuple[str, str], Entry]:
    """Every entry of ``catalogue.csv`` by (kind, id)."""
    text = files("policy").joinpath("catalogue.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return {
        (row["kind"], row["id"]): Entry(row["kind"], row["id"], row["name_zh"], row["name_en"])  # type: ignore[arg-type]
        for row in rows
    }


def display_name(kind: Kind, identifier: str) -> str:
    """``民政局 (civil-affairs)``, or the bare identifier when the catalogue has no entry."""
    entry = catalogue().get((kind, identifier))
    return f"{entry.name_zh} ({identifier})" if entry else identifier
