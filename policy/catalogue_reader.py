"""Reading a catalogue file (TOML): every entry checked against those read before it, and
the first mistake refused with its line and reason."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

from policy.catalogue_entries import (
    CITY_WIDE,
    KINDS,
    LEVELS,
    MAX_DAYS,
    Catalogue,
    Condition,
    DocType,
    FormField,
    Kind,
    Level,
    Material,
    Named,
    Service,
    Step,
    Unit,
)
from policy.scales import TrustLevel

_IDENTIFIER = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_FIELD = re.compile(r"[a-z][a-z0-9_]*")
_MAX_IDENTIFIER = 64
_MAX_NAME = 200


class CatalogueError(ValueError):
    """A catalogue file that cannot be put in force: the first mistake, with its line."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def parse_catalogue(text: str) -> Catalogue:
    """Read and check a catalogue file whole; :class:`CatalogueError` at the first mistake."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        at = re.search(r"line (\d+)", str(e))
        raise CatalogueError(int(at.group(1)) if at else 1, f"not TOML: {e}") from None
    return _Reader(text, data).read()


T = TypeVar("T")


class _Reader:
    """Turns the parsed TOML into entries, checking each against those read before it
    (units after their parents; services after departments, types and categories)."""

    _ORDER: tuple[Kind, ...] = ("unit", "department", "doc_type", "category", "track", "service")

    def __init__(self, text: str, data: dict[str, Any]) -> None:
        self.lines = text.splitlines()
        self.text = text
        self.data = data
        self.entries: dict[tuple[Kind, str], Named] = {}
        self.line = 1

    def read(self) -> Catalogue:
        for key in self.data:
            if key not in KINDS:
                raise CatalogueError(self._find(f"[[{key}]]", 0) or 1, f"unknown table {key!r}")
        readers: dict[Kind, Callable[[dict[str, Any]], Named]] = {
            "unit": self._unit, "department": self._plain("department"),
            "doc_type": self._doc_type, "category": self._plain("category"),
            "track": self._plain("track"), "service": self._service,
        }
        for kind in self._ORDER:
            tables = self.data.get(kind, [])
            if not isinstance(tables, list):
                raise CatalogueError(self._find(kind, 0) or 1, f"{kind} must be a [[{kind}]] list")
            for index, table in enumerate(tables):
                self.line = self._header_line(kind, index)
                entry = readers[kind](table)
                if (kind, entry.id) in self.entries:
                    raise self._fail(f"{kind} {entry.id!r} is listed twice", "id ")
                self.entries[(kind, entry.id)] = entry
        cities = [u for u in self.entries.values() if isinstance(u, Unit) and u.level == "city"]
        if len(cities) != 1:
            raise CatalogueError(1, f"there must be one city unit, not {len(cities)}")
        digest = hashlib.sha256(self.text.encode()).hexdigest()
        return Catalogue(self.entries, digest, self.text)

    # where things are

    def _header_line(self, kind: str, index: int) -> int:
        seen = -1
        for number, line in enumerate(self.lines, 1):
            if line.strip() == f"[[{kind}]]":
                seen += 1
                if seen == index:
                    return number
        return 1

    def _find(self, needle: str, after: int) -> int | None:
        """The first line from ``after`` (1-based, exclusive) that holds ``needle``."""
        for number in range(after, len(self.lines)):
            if needle in self.lines[number]:
                return number + 1
        return None

    def _fail(self, reason: str, near: str | None = None) -> CatalogueError:
        line = (self._find(near, self.line - 1) if near else None) or self.line
        return CatalogueError(line, reason)

    # values

    def _value(self, table: dict[str, Any], key: str, kind: type[T], default: Any = ...) -> T:
        if key not in table:
            if default is ...:
                raise self._fail(f"{key} is missing")
            return cast(T, default)
        value = table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self._fail(f"{key} must be {kind.__name__}", f"{key} ")
        return value

    def _no_other_keys(self, table: dict[str, Any], allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                raise self._fail(f"unknown key {key!r}", f"{key} ")

    def _identifier(self, table: dict[str, Any], key: str = "id") -> str:
        value = self._value(table, key, str)
        if len(value) > _MAX_IDENTIFIER or not _IDENTIFIER.fullmatch(value):
            raise self._fail(f"{key} {value!r} must be lower-case ASCII words joined by hyphens",
                             f"{key} ")
        return value

    def _text(self, table: dict[str, Any], key: str) -> str:
        value = self._value(table, key, str)
        if not value.strip() or len(value) > _MAX_NAME or not value.isprintable():
            raise self._fail(f"{key} must be printable text of 1 to {_MAX_NAME} characters",
                             f"{key} ")
        return value

    def _known(self, kind: Kind, identifier: str, what: str) -> str:
        if (kind, identifier) not in self.entries:
            raise self._fail(f"{what} {identifier!r} is no {kind} of the catalogue",
                             f'"{identifier}"')
        return identifier

    def _names(self, table: dict[str, Any]) -> tuple[str, str, str]:
        return self._identifier(table), self._text(table, "name_zh"), self._text(table, "name_en")

    def _list(self, table: dict[str, Any], key: str) -> Iterator[Any]:
        values = self._value(table, key, list)
        if not values:
            raise self._fail(f"{key} must not be empty", f"{key} ")
        yield from values

    # entries

    def _plain(self, kind: Kind) -> Callable[[dict[str, Any]], Named]:
        def read(table: dict[str, Any]) -> Named:
            self._no_other_keys(table, {"id", "name_zh", "name_en"})
            return Named(kind, *self._names(table))

        return read

    def _unit(self, table: dict[str, Any]) -> Unit:
        self._no_other_keys(table, {"id", "name_zh", "name_en", "level", "parent"})
        names = self._names(table)
        level = self._value(table, "level", str)
        if level not in LEVELS:
            raise self._fail(f"level must be one of {', '.join(LEVELS)}", "level ")
        rank = LEVELS.index(level)
        parent = self._value(table, "parent", str, None)
        if level == "city":
            if parent is not None:
                raise self._fail("a city has no parent", "parent ")
        else:
            if parent is None:
                raise self._fail(f"a {level} needs a parent")
            above = self.entries.get(("unit", self._known("unit", parent, "parent")))
            assert isinstance(above, Unit)
            if LEVELS.index(above.level) != rank - 1:
                raise self._fail(f"a {level}'s parent must be a {LEVELS[rank - 1]}", "parent ")
        return Unit("unit", *names, level=cast(Level, level), parent=parent)

    def _doc_type(self, table: dict[str, Any]) -> DocType:
        self._no_other_keys(table, {"id", "name_zh", "name_en", "attributes"})
        names = self._names(table)
        attributes = tuple(self._value(table, "attributes", list, []))
        for attribute in attributes:
            if not isinstance(attribute, str) or not _FIELD.fullmatch(attribute):
                raise self._fail(f"attribute {attribute!r} must be a lower-case name",
                                 "attributes ")
        if len(set(attributes)) != len(attributes):
            raise self._fail("an attribute is listed twice", "attributes ")
        return DocType("doc_type", *names, attributes=attributes)

    def _service(self, table: dict[str, Any]) -> Service:
        self._no_other_keys(table, {
            "id", "name_zh", "name_en", "department", "category", "accepted_at", "conditions",
            "time_limit_days", "statutory_days", "issues", "materials", "steps", "form",
        })
        names = self._names(table)
        department = self._known("department", self._identifier(table, "department"),
                                  "department")
        category = self._known("category", self._identifier(table, "category"), "category")
        accepted_at = tuple(self._place(p) for p in self._list(table, "accepted_at"))
        if CITY_WIDE in accepted_at and len(accepted_at) > 1:
            raise self._fail(f"{CITY_WIDE} stands alone", "accepted_at ")
        conditions = tuple(self._condition(c) for c in self._value(table, "conditions", list, []))
        limit = self._value(table, "time_limit_days", int)
        statutory = self._value(table, "statutory_days", int)
        if not 0 <= limit <= statutory <= MAX_DAYS:
            raise self._fail(
                f"time limits must satisfy 0 <= time_limit_days <= statutory_days <= {MAX_DAYS}",
                "time_limit_days ",
            )
        issues = self._known("doc_type", self._identifier(table, "issues"), "issues")
        materials = tuple(self._material(m) for m in self._list(table, "materials"))
        needs = [m.doc_type for m in materials]
        if len(set(needs)) != len(needs):
            raise self._fail("a document type is a material twice", "materials ")
        steps = tuple(self._step(s) for s in self._list(table, "steps"))
        form = tuple(self._form_field(f, needs) for f in self._value(table, "form", list, []))
        if len({f.field for f in form}) != len(form):
            raise self._fail("a form field is listed twice", "form ")
        return Service(
            "service", *names, department=department, category=category,
            accepted_at=accepted_at, conditions=conditions, materials=materials,
            time_limit_days=limit, statutory_days=statutory, steps=steps, form=form,
            issues=issues,
        )

    def _place(self, place: object) -> str:
        if not isinstance(place, str):
            raise self._fail("accepted_at holds unit levels, unit ids or city-wide",
                             "accepted_at ")
        if place == CITY_WIDE or place in LEVELS:
            return place
        return self._known("unit", place, "accepted_at")

    def _table(self, value: object, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._fail(f"each of {what} must be a table {{ … }}", f"{what} ")
        return value

    def _condition(self, value: object) -> Condition:
        table = self._table(value, "conditions")
        self._no_other_keys(table, {"zh", "en"})
        return Condition(self._text(table, "zh"), self._text(table, "en"))

    def _material(self, value: object) -> Material:
        table = self._table(value, "materials")
        self._no_other_keys(table, {"doc_type", "min_trust", "key", "commitment_allowed"})
        doc_type = self._known("doc_type", self._identifier(table, "doc_type"), "material")
        trust = self._value(table, "min_trust", str)
        if trust not in set(TrustLevel):
            raise self._fail("min_trust must be A, B, C or D", f'"{doc_type}"')
        return Material(
            doc_type, TrustLevel(trust), self._value(table, "key", bool),
            self._value(table, "commitment_allowed", bool, False),
        )

    def _step(self, value: object) -> Step:
        table = self._table(value, "steps")
        self._no_other_keys(table, {"departments"})
        departments = tuple(
            self._known("department", d, "step department") if isinstance(d, str)
            else self._known("department", str(d), "step department")
            for d in self._list(table, "departments")
        )
        if len(set(departments)) != len(departments):
            raise self._fail("a department is listed twice in one step", "departments ")
        return Step(departments)

    def _form_field(self, value: object, needs: list[str]) -> FormField:
        table = self._table(value, "form")
        self._no_other_keys(table, {"field", "name_zh", "name_en", "source"})
        name = self._value(table, "field", str)
        if not _FIELD.fullmatch(name):
            raise self._fail(f"field {name!r} must be a lower-case name", "field ")
        source = self._value(table, "source", str)
        doc_type, _, attribute = source.partition(".")
        if doc_type not in needs:
            raise self._fail(f"form field {name!r} is filled from {doc_type!r}, which is no "
                             "material of the service", f'"{source}"')
        known = self.entries[("doc_type", doc_type)]
        assert isinstance(known, DocType)
        if attribute not in known.attributes:
            raise self._fail(f"{doc_type} has no attribute {attribute!r}", f'"{source}"')
        return FormField(name, self._text(table, "name_zh"), self._text(table, "name_en"),
                         doc_type, attribute)
