"""Command inputs and their validation: every check runs before anything is written."""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from policy.catalogue import Kind, catalogue
from policy.scales import Grade
from vault.errors import InvalidInput
from vault.ids import check_identifier, check_resident_id

_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
# Control (Cc), format (Cf: bidi overrides, zero-width marks), surrogate (Cs) and
# private-use (Co) characters: none belongs in a name a person reads, and each can make
# a page or a log line say something other than what it holds.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co"})
MAX_TITLE = 200
MAX_FILENAME = 255
MAX_ATTRIBUTE = 200
MAX_USES_LIMIT = 1_000_000
MAX_SEQUENCE = 2**63 - 1


@dataclass(frozen=True)
class DocumentDetails:
    """What describes a document besides its bytes."""

    doc_type: str
    title: str
    content_type: str = "application/octet-stream"
    filename: str | None = None
    expires_at: datetime | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    """What the document says, for forms to be filled from (反填): only the attributes the
    catalogue names for its type (an id-card's ``name``, ``number`` …)."""

    def __post_init__(self) -> None:
        check_known("doc_type", "doc_type", self.doc_type)
        check_text("title", self.title, MAX_TITLE)
        check_attributes(self.doc_type, self.attributes)
        if not isinstance(self.content_type, str) or not _CONTENT_TYPE.fullmatch(
            self.content_type
        ):
            raise InvalidInput("content_type", "must be a media type such as application/pdf")
        if self.filename is not None:
            check_text("filename", self.filename, MAX_FILENAME)
            if "/" in self.filename or "\\" in self.filename:
                raise InvalidInput("filename", "must be a bare file name, without folders")
        if self.expires_at is not None:
            check_aware("expires_at", self.expires_at)


@dataclass(frozen=True)
class ConsentRequest:
    """What a resident grants: to whom, which document types, for what, and for how long."""

    department: str
    doc_types: tuple[str, ...]
    purpose: str
    valid_until: datetime
    valid_from: datetime | None = None
    max_uses: int | None = None

    def __post_init__(self) -> None:
        check_known("department", "department", self.department)
        check_known("purpose", "service", self.purpose)
        if isinstance(self.doc_types, str) or not isinstance(self.doc_types, Sequence):
            raise InvalidInput("doc_types", "must be a list of document types")
        if not self.doc_types:
            raise InvalidInput("doc_types", "must name at least one document type")
        for doc_type in self.doc_types:
            check_known("doc_types", "doc_type", doc_type)
        if len(set(self.doc_types)) != len(self.doc_types):
            raise InvalidInput("doc_types", "lists a document type twice")
        check_aware("valid_until", self.valid_until)
        if self.valid_from is not None:
            check_aware("valid_from", self.valid_from)
            if self.valid_from >= self.valid_until:
                raise InvalidInput("valid_until", "must be after valid_from")
        if self.max_uses is not None and (
            isinstance(self.max_uses, bool)
            or not isinstance(self.max_uses, int)
            or not 1 <= self.max_uses <= MAX_USES_LIMIT
        ):
            raise InvalidInput("max_uses", f"must be a whole number from 1 to {MAX_USES_LIMIT}")


@dataclass(frozen=True)
class ByteRange:
    """One range of a document's bytes, as ``Range: bytes=first-last`` asks: from ``first``
    to ``last`` (included; to the end when None), or the last ``suffix`` bytes."""

    first: int | None
    last: int | None

    def __post_init__(self) -> None:
        for value in (self.first, self.last):
            if value is not None and not 0 <= value <= MAX_SEQUENCE:
                raise InvalidInput("range", "is not a range of bytes this API can serve")
        if self.first is None and self.last is None:
            raise InvalidInput("range", "names no bytes")
        if self.first is not None and self.last is not None and self.first > self.last:
            raise InvalidInput("range", "ends before it starts")

    def span(self, size: int) -> tuple[int, int] | None:
        """The bytes [start, stop) of a document of ``size`` bytes; None if it has none of
        them."""
        if self.first is None:  # a suffix: the last N bytes
            assert self.last is not None
            start = max(size - self.last, 0)
            return (start, size) if self.last > 0 and size > 0 else None
        if self.first >= size:
            return None
        stop = size if self.last is None else min(self.last + 1, size)
        return self.first, stop


@dataclass(frozen=True)
class GradeUpdate:
    """One row pushed by the credit platform."""

    resident_id: str
    grade: Grade
    effective_at: datetime
    sequence: int


def check_grade_updates(rows: Sequence[GradeUpdate]) -> None:
    """Validate a whole batch; the first bad row rejects it, naming its index."""
    for index, row in enumerate(rows):
        try:
            check_resident_id(row.resident_id)
            if not isinstance(row.grade, Grade):
                raise InvalidInput("grade", "must be one of A, B, C, D")
            check_aware("effective_at", row.effective_at)
            if (
                isinstance(row.sequence, bool)
                or not isinstance(row.sequence, int)
                or not 0 <= row.sequence <= MAX_SEQUENCE
            ):
                raise InvalidInput("sequence", "must be a non-negative whole number")
        except InvalidInput as e:
            raise InvalidInput(f"updates[{index}].{e.field}", e.problem) from None


_KIND_NAMES = {
    "unit": "unit", "department": "department", "doc_type": "document type",
    "category": "category", "service": "service", "track": "fast-track track",
}


def check_known(field: str, kind: Kind, value: object) -> str:
    """An identifier the catalogue knows as a ``kind``; 422 naming ``field`` otherwise."""
    check_identifier(field, value)
    assert isinstance(value, str)
    if not catalogue().knows(kind, value):
        raise InvalidInput(field, f"{value!r} is no {_KIND_NAMES[kind]} of the catalogue")
    return value


def check_attributes(doc_type: str, attributes: object) -> None:
    """A document's attributes: a text for each of some the catalogue names for its type."""
    if not isinstance(attributes, Mapping):
        raise InvalidInput("attributes", "must be an object of texts")
    entry = catalogue().entries.get(("doc_type", doc_type))
    known: tuple[str, ...] = getattr(entry, "attributes", ())
    for name, value in attributes.items():
        if name not in known:
            raise InvalidInput(
                f"attributes.{str(name)[:64]}", f"is no attribute of {doc_type}"
                + (f" (it has {', '.join(known)})" if known else " (it has none)")
            )
        check_text(f"attributes.{name}", value, MAX_ATTRIBUTE)


def check_text(field: str, value: object, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters")
    for character in value:
        if unicodedata.category(character) in _UNPRINTABLE:
            raise InvalidInput(
                field,
                f"must not contain control, format, surrogate or private-use characters "
                f"(found U+{ord(character):04X})",
            )
    return value


@functools.cache
def printable_text_pattern() -> str:
    """The regular expression (JSON Schema / Python ``re``) of what :func:`check_text`
    accepts, lengths aside: no character of the refused categories, and one at least that
    is not white space. Computed from this Python's Unicode tables, like the check.

    Surrogates (Cs) are left out of it: they are no Unicode scalar values, so no text in
    UTF-8 holds them and the regular expression engines of JSON Schema validators (Rust's,
    for one) cannot name them. The check still refuses a lone one sent as a JSON escape."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)) in _UNPRINTABLE - {"Cs"}:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))

    def char(code: int) -> str:  # BMP as an escape (surrogates cannot be written), the rest as is
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    refused = "".join(char(a) if a == b else f"{char(a)}-{char(b)}" for a, b in ranges)
    return f"^[^{refused}]*[^{refused}\\s][^{refused}]*$"


def check_aware(field: str, value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(field, "must be a date-time with a time zone (RFC 3339)")
    try:  # every time is compared and stored in UTC, which must hold it
        value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(field, "is outside the years 1 to 9999 in UTC") from None
    return value


# RFC 3339 section 5.6 date-time: a full date, "T", a full time and an offset, nothing
# else: no bare dates, no seconds since the epoch, no ISO 8601 basic or week forms; and,
# for a vault of civic documents, a year from 1900 to 2199 (which keeps every time within
# what UTC can hold, whatever its offset).
RFC3339_PATTERN = (
    r"^(19|2[01])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RFC3339 = re.compile(RFC3339_PATTERN.strip("^$"))


def parse_rfc3339(field: str, text: object) -> datetime:
    """An RFC 3339 date-time with its offset, as an aware datetime (fractions past the
    microsecond dropped); 422 naming ``field`` for anything else."""
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise InvalidInput(
            field,
            "must be an RFC 3339 date-time with an offset, from 1900 to 2199, "
            "e.g. 2026-12-01T09:30:00+08:00",
        )
    date_part, _, rest = text.upper().partition("T")
    fraction = re.search(r"\.([0-9]+)", rest)
    if fraction is not None:  # datetime holds microseconds; keep at most six digits
        rest = rest.replace(fraction.group(0), "." + fraction.group(1)[:6].ljust(6, "0"), 1)
    try:
        moment = datetime.fromisoformat(f"{date_part}T{rest}")
    except ValueError:
        raise InvalidInput(field, f"{text!r} is no date-time of the calendar") from None
    return check_aware(field, moment)
