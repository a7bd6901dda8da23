"""The catalogue (事项目录): every unit, department, document type, category, service and
fast-track track the vault knows, with its names in Chinese and English.

A unit sits in the four-level tree (city → district → street → community). A document
type lists the attributes a form may be filled from. A service is standardised
(事项标准化): its owner, category, where it may be accepted, its conditions, its
materials, its time limits in working days, the departments that review it in order, its
form and where each field comes from, and the document it issues on approval.

The identifiers in policies, events and the API are lower-case ASCII; people read the
names beside them. Every identifier a request names is checked against the catalogue
(``vault.inputs``), and it is served as it is at ``GET /v1/catalogue``. A catalogue file is
TOML (``catalogue.toml`` is the one shipped); a mistake in one is refused whole, with its
line and reason (:class:`CatalogueError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from policy.catalogue_entries import (
    CITY_WIDE,
    KINDS,
    LEVELS,
    Catalogue,
    Kind,
    Level,
    Named,
    Service,
    Unit,
)
from policy.catalogue_reader import CatalogueError, parse_catalogue

__all__ = [
    "CITY_WIDE", "KINDS", "LEVELS", "Catalogue", "CatalogueError", "Kind", "Level", "Named",
    "Service", "Unit", "catalogue", "display_name", "parse_catalogue", "put_in_force",
    "shipped_catalogue", "shipped_catalogue_text",
]


@cache
def shipped_catalogue_text() -> str:
    return files("policy").joinpath("catalogue.toml").read_text(encoding="utf-8")


@cache
def shipped_catalogue() -> Catalogue:
    """The catalogue shipped with the vault, checked."""
    return parse_catalogue(shipped_catalogue_text())


@dataclass
class _InForce:
    catalogue: Catalogue | None = None


_IN_FORCE = _InForce()


def catalogue() -> Catalogue:
    """The catalogue in force in this process: the last one published, as the catalogue
    service last read it (``vault.services.catalogues``), else the shipped one."""
    return _IN_FORCE.catalogue or shipped_catalogue()


def put_in_force(found: Catalogue | None) -> None:
    """Make ``found`` the catalogue every check in this process reads (None: the shipped)."""
    _IN_FORCE.catalogue = found


def display_name(kind: Kind, identifier: str) -> str:
    """``民政局 (civil-affairs)``, or the bare identifier when the catalogue has no entry."""
    entry = catalogue().entries.get((kind, identifier))
    return f"{entry.name_zh} ({identifier})" if entry else identifier


