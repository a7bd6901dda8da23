"""What a catalogue holds: units in four levels (city → district → street → community),
departments, document types with the attributes a form may be filled from (反填),
categories, tracks, and services standardised (事项标准化); and the catalogue itself, which
answers questions about them (which unit lies under which, where a service is accepted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast, get_args

from policy.scales import TrustLevel

Kind = Literal["unit", "department", "doc_type", "category", "service", "track"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Level = Literal["city", "district", "street", "community"]
LEVELS: tuple[Level, ...] = get_args(Level)
CITY_WIDE = "city-wide"
"""Accepted at any window of the city (全市通办)."""
MAX_DAYS = 365

@dataclass(frozen=True)
class Named:
    kind: Kind
    id: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Unit(Named):
    level: Level
    parent: str | None


@dataclass(frozen=True)
class DocType(Named):
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class Condition:
    zh: str
    en: str


@dataclass(frozen=True)
class Material:
    doc_type: str
    min_trust: TrustLevel
    key: bool
    """A key material (关键材料) may not be missing when the application is accepted."""
    commitment_allowed: bool
    """The resident's signed commitment (告知承诺) may stand in for it."""


@dataclass(frozen=True)
class Step:
    departments: tuple[str, ...]
    """The departments that review at this step, side by side."""


@dataclass(frozen=True)
class FormField:
    field: str
    name_zh: str
    name_en: str
    doc_type: str
    attribute: str
    """The field is filled (反填) from this attribute of a document of ``doc_type``."""

    @property
    def source(self) -> str:
        return f"{self.doc_type}.{self.attribute}"


@dataclass(frozen=True)
class Service(Named):
    department: str
    category: str
    accepted_at: tuple[str, ...]
    """Unit levels, unit ids, or ``city-wide``."""
    conditions: tuple[Condition, ...]
    materials: tuple[Material, ...]
    time_limit_days: int
    """The promised time limit (承诺时限), in working days."""
    statutory_days: int
    """The time limit the law sets (法定时限), in working days."""
    steps: tuple[Step, ...]
    form: tuple[FormField, ...]
    issues: str
    """The document type the owner issues on approval."""

    @property
    def needs(self) -> tuple[str, ...]:
        """The document types of its materials, in order."""
        return tuple(m.doc_type for m in self.materials)


@dataclass(frozen=True)
class Catalogue:
    entries: dict[tuple[Kind, str], Named]
    version: str = ""
    """The SHA-256 of the file it was read from (lower-case hex)."""
    text: str = field(default="", repr=False)

    def knows(self, kind: Kind, identifier: str) -> bool:
        return (kind, identifier) in self.entries

    def of_kind(self, kind: Kind) -> list[Named]:
        """The entries of a kind, in the order the catalogue lists them."""
        return [e for e in self.entries.values() if e.kind == kind]

    def service(self, identifier: str) -> Service:
        return cast(Service, self.entries[("service", identifier)])

    def unit(self, identifier: str) -> Unit:
        return cast(Unit, self.entries[("unit", identifier)])

    def doc_types(self) -> list[DocType]:
        return cast(list[DocType], self.of_kind("doc_type"))

    def services(self) -> list[Service]:
        return cast(list[Service], self.of_kind("service"))

    def units(self) -> list[Unit]:
        return cast(list[Unit], self.of_kind("unit"))

    def ancestry(self, unit_id: str) -> list[Unit]:
        """The unit and those above it, up to the city."""
        found: list[Unit] = []
        current: str | None = unit_id
        while current is not None:
            unit = self.unit(current)
            found.append(unit)
            current = unit.parent
        return found

    def within(self, unit_id: str, ancestor_id: str) -> bool:
        """Whether a unit is ``ancestor_id`` or lies under it."""
        return any(u.id == ancestor_id for u in self.ancestry(unit_id))

    def accepts(self, service_id: str, unit_id: str) -> bool:
        """Whether a window of the unit may accept applications for the service."""
        places = set(self.service(service_id).accepted_at)
        unit = self.unit(unit_id)
        return CITY_WIDE in places or unit.level in places or unit.id in places


