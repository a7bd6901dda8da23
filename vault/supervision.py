"""Supervision (绩效监督): a unit's figures and those of each unit, department or service
under it, summed from the read models' daily tallies and rolled up the unit tree of the
catalogue in force.

A supervisor sees their unit and everything under it (四级联动); the city's supervisors
also see what residents applied for online (which no window took), under the key
``online``.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Literal, Protocol

from policy.catalogue_entries import Catalogue
from vault.errors import InvalidInput

By = Literal["unit", "department", "service"]
BY: tuple[By, ...] = ("unit", "department", "service")
ONLINE = "online"
"""The key of applications made online, in figures by unit."""


@dataclass(frozen=True)
class Where:
    """Where applications were counted: the window's unit ('' online), the owner of the
    service, the service."""

    unit: str
    department: str
    service_id: str


@dataclass(frozen=True)
class Tally:
    """Counts that add up over days and places."""

    accepted: int = 0
    decided: int = 0
    on_time: int = 0
    working_days: int = 0
    materials_reused: int = 0
    materials_brought: int = 0
    trips_saved: int = 0
    rated: int = 0
    rating_sum: int = 0
    overdue: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class Figures:
    key: str
    accepted: int
    decided: int
    on_time_rate: float | None
    """Of the applications decided in the period, the share decided by their due moment."""
    avg_working_days: float | None
    """Of the applications decided in the period, the working days each took, on average."""
    overdue: int
    """Open now and past their due moment."""
    materials_reused: int
    """Materials taken from the library when applications were accepted (证件复用)."""
    materials_brought: int
    """Materials the resident had to hand in: at a window, or supplied later."""
    trips_saved: int
    """Applications made online: no trip to a window at all (零跑动)."""
    rating_avg: float | None

    @staticmethod
    def of(key: str, tally: Tally) -> Figures:
        decided = tally.decided
        return Figures(
            key=key, accepted=tally.accepted, decided=decided,
            on_time_rate=round(tally.on_time / decided, 4) if decided else None,
            avg_working_days=round(tally.working_days / decided, 2) if decided else None,
            overdue=tally.overdue, materials_reused=tally.materials_reused,
            materials_brought=tally.materials_brought, trips_saved=tally.trips_saved,
            rating_avg=round(tally.rating_sum / tally.rated, 2) if tally.rated else None,
        )


class Tallies(Protocol):
    """The read models' daily tallies."""

    def tallies(
        self, *, units: Set[str], since: date | None, until: date | None
    ) -> list[tuple[Where, Tally]]:
        """The sums of the days from ``since`` to ``until`` (both included; China Standard
        Time), for windows of ``units`` ('' for online)."""
        ...

    def overdue_counts(self, *, units: Set[str], now: datetime) -> list[tuple[Where, int]]:
        """How many open applications of ``units`` are past their due moment ``now``."""
        ...


def scope(catalogue: Catalogue, unit: str) -> frozenset[str]:
    """The units a supervisor of ``unit`` sees: it and those under it; '' (online) too for
    the city."""
    seen = {u.id for u in catalogue.units() if catalogue.within(u.id, unit)}
    if catalogue.unit(unit).parent is None:
        seen.add("")
    return frozenset(seen)


def figures(
    tallies: Tallies,
    catalogue: Catalogue,
    *,
    unit: str,
    by: By,
    since: date | None,
    until: date | None,
    now: datetime,
) -> list[Figures]:
    """A supervisor's figures for the period: one row for their unit as a whole (key: the
    unit's id), then one per unit directly under it (``by=unit``, online ones under
    ``online``), per department that owns the services, or per service."""
    if since is not None and until is not None and since > until:
        raise InvalidInput("since", "comes after until")
    if by not in BY:
        raise InvalidInput("by", "must be unit, department or service")
    units = scope(catalogue, unit)
    counted: list[tuple[Where, Tally]] = tallies.tallies(units=units, since=since, until=until)
    counted += [(where, Tally(overdue=n))
                for where, n in tallies.overdue_counts(units=units, now=now)]
    rows: dict[str, Tally] = {}
    for where, tally in counted:
        key = _key(catalogue, unit, by, where)
        rows[key] = rows.get(key, Tally()) + tally
    total = sum((t for _, t in counted), Tally())
    return [Figures.of(unit, total)] + [Figures.of(k, rows[k]) for k in sorted(rows)]


def _key(catalogue: Catalogue, unit: str, by: By, where: Where) -> str:
    if by == "department":
        return where.department
    if by == "service":
        return where.service_id
    if where.unit == "":
        return ONLINE
    if where.unit == unit:
        return unit
    # The unit right under the supervisor's on the way up from the window's.
    return next(u.id for u in catalogue.ancestry(where.unit) if u.parent == unit)
