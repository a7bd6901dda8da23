"""The catalogue: every department, document type, service and fast-track track the vault
knows, with its name in Chinese and English; for a service, the department that owns it
and the document types it needs.

The identifiers in policies, events and the API are lower-case ASCII; people read the
names beside them. Every identifier a request names is checked against this catalogue
(``vault.inputs``), and it is served as it is at ``GET /v1/catalogue``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Literal

Kind = Literal["department", "doc_type", "service", "track"]
KINDS: tuple[Kind, ...] = ("department", "doc_type", "service", "track")


@dataclass(frozen=True)
class Entry:
    kind: Kind
    id: str
    name_zh: str
    name_en: str
    owner: str | None = None
    """A service's owning department."""
    needs: tuple[str, ...] = ()
    """The document types a service needs."""


@dataclass(frozen=True)
class Catalogue:
    entries: dict[tuple[str, str], Entry]

    def knows(self, kind: Kind, identifier: str) -> bool:
        return (kind, identifier) in self.entries

    def of_kind(self, kind: Kind) -> list[Entry]:
        """The entries of a kind, in the order the catalogue lists them."""
        return [e for e in self.entries.values() if e.kind == kind]


@cache
def catalogue() -> Catalogue:
    """The catalogue shipped in ``catalogue.csv``, checked: every service's owner is a
    department and every type it needs a document type of the catalogue."""
    text = files("policy").joinpath("catalogue.csv").read_text(encoding="utf-8")
    entries: dict[tuple[str, str], Entry] = {}
    for row in csv.DictReader(io.StringIO(text)):
        kind = row["kind"]
        if kind not in KINDS:
            raise ValueError(f"catalogue.csv: unknown kind {kind!r}")
        entries[(kind, row["id"])] = Entry(
            kind,
            row["id"],
            row["name_zh"],
            row["name_en"],
            row["owner"] or None,
            tuple(row["needs"].split()),
        )
    found = Catalogue(entries)
    for service in found.of_kind("service"):
        if service.owner is None or not found.knows("department", service.owner):
            raise ValueError(f"catalogue.csv: service {service.id} has no known owner")
        for doc_type in service.needs:
            if not found.knows("doc_type", doc_type):
                raise ValueError(f"catalogue.csv: service {service.id} needs {doc_type}")
    return found


def display_name(kind: Kind, identifier: str) -> str:
    """``民政局 (civil-affairs)``, or the bare identifier when the catalogue has no entry."""
    entry = catalogue().entries.get((kind, identifier))
    return f"{entry.name_zh} ({identifier})" if entry else identifier
