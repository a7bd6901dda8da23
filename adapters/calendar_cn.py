"""Working days on the Chinese calendar: the `chinese-calendar` package's holidays and
adjusted working weekends (调休), then the rows of a holiday file, then Monday to Friday.

The package knows the years up to its release (2004–2026 in 1.11). For later years an
operator copies the State Council's notice (国务院办公厅关于某年部分节假日安排的通知)
into ``policy/holidays.csv``; a row there wins over the package. A year known to neither
falls back to Monday–Friday, and ``knows(year)`` says so, so a due date can be shown as an
estimate.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from importlib.resources import files

import chinese_calendar  # type: ignore[import-untyped]

HEADER = ["date", "kind", "note"]
KINDS = {"holiday": False, "workday": True}
"""A row's kind, and whether it makes the day a working day."""
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class HolidayFileError(ValueError):
    """A holiday file that cannot be used; names the line and the reason."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source} line {line}: {reason}")
        self.line = line
        self.reason = reason


def shipped_holidays() -> str:
    """The holiday file shipped with civicvault (``policy/holidays.csv``)."""
    return files("policy").joinpath("holidays.csv").read_text(encoding="utf-8")


def parse_holidays(text: str, source: str = "holidays.csv") -> dict[date, bool]:
    """Each day the file names, and whether it is a working day; the first bad line raises
    :class:`HolidayFileError`. Blank lines and lines starting with ``#`` are skipped; the
    first other line is the header ``date,kind,note``."""
    days: dict[date, bool] = {}
    lines: dict[date, int] = {}
    header_seen = False
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in next(csv.reader([raw]))]
        if not header_seen:
            if fields != HEADER:
                raise HolidayFileError(source, number, f"the header must be {','.join(HEADER)}")
            header_seen = True
            continue
        if len(fields) != len(HEADER):
            raise HolidayFileError(source, number, f"expected 3 fields, found {len(fields)}")
        text_day, kind, _note = fields
        day = _parse_day(text_day)
        if day is None:
            raise HolidayFileError(source, number, f"date {text_day!r} is not YYYY-MM-DD")
        if kind not in KINDS:
            raise HolidayFileError(source, number, f"kind {kind!r} is not holiday or workday")
        if kind == "workday" and day.weekday() < 5:
            # Only a weekend day can be made a working day: a weekday here is a typo.
            raise HolidayFileError(source, number, f"{day} is a weekday, already worked")
        if day in lines:
            raise HolidayFileError(source, number, f"{day} is already on line {lines[day]}")
        days[day], lines[day] = KINDS[kind], number
    if not header_seen:
        raise HolidayFileError(source, 1, f"the header must be {','.join(HEADER)}")
    return days


def _parse_day(text: str) -> date | None:
    if not _ISO_DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


class ChineseCalendar:
    """The :class:`vault.workdays.WorkingCalendar` of China's public holidays and 调休."""

    def __init__(self, holidays_text: str | None = None) -> None:
        """``holidays_text``: an operator's holiday file; the shipped one by default."""
        text = shipped_holidays() if holidays_text is None else holidays_text
        self._rows = parse_holidays(text)
        self._holidays: frozenset[date] = frozenset(chinese_calendar.holidays)
        self._workdays: frozenset[date] = frozenset(chinese_calendar.workdays)
        first, last = min(self._holidays).year, max(self._holidays).year
        self._known_years = set(range(first, last + 1)) | {day.year for day in self._rows}

    def is_working_day(self, day: date) -> bool:
        """Whether offices work on ``day``; Monday to Friday in a year nobody knows."""
        if day in self._rows:
            return self._rows[day]
        if day in self._workdays:
            return True
        return day not in self._holidays and day.weekday() < 5

    def knows(self, year: int) -> bool:
        """Whether the year's official arrangement is known (from the package or the file)."""
        return year in self._known_years
