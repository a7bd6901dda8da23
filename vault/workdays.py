"""Time limits (承诺时限) counted in working days, with the clock paused while an
application waits for the resident (补正).

The rules, as a 政务服务 centre counts "N 个工作日":

- Days are calendar days in China Standard Time (UTC+8), whatever zone a moment is given in.
- The day of acceptance is not counted: counting starts on the next working day.
- The due moment is the end (23:59:59.999999 CST) of the Nth counted working day; with
  N = 0 (即办件) it is the end of the day of acceptance.
- A counted working day is used from its first moment: on the Nth day all N are used.
- A pause stops the clock the way acceptance starts it: the day it begins still counts;
  the working days after it, up to and including the day it ends (the day the resident's
  materials arrive), do not; counting resumes on the next working day. A pause that begins
  and ends on the same day stops nothing.

Counts are whole days: residents are promised a date, not an hour, and a fractional count
would put due moments in the middle of a day.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from fractions import Fraction
from itertools import islice, takewhile
from typing import Literal, Protocol

CHINA = timezone(timedelta(hours=8), "CST")
WARNING_SHARE = Fraction(4, 5)
"""The share of the time limit used from which an application shows a warning."""
LONGEST_REST = 31
"""More days than this without a working day means the calendar is broken, not festive."""

Pause = tuple[datetime, datetime | None]
"""When the resident was asked for more, and when they answered (None: still waiting)."""
ClockState = Literal["on-time", "warning", "overdue", "paused"]


class WorkingCalendar(Protocol):
    """Which days are working days (工作日), public holidays and 调休 included."""

    def is_working_day(self, day: date) -> bool: ...

    def knows(self, year: int) -> bool:
        """Whether the year's official holiday arrangement is known; if not, its days are
        an estimate (Monday to Friday)."""
        ...


def add_working_days(start: datetime, days: int, calendar: WorkingCalendar) -> datetime:
    """The due moment (UTC) of a time limit of ``days`` working days from acceptance at
    ``start``."""
    return due_with_pauses(start, days, calendar, ())


def due_with_pauses(
    start: datetime, days: int, calendar: WorkingCalendar, pauses: Sequence[Pause]
) -> datetime:
    """The due moment (UTC), pushed out by the working days the clock stood still.

    Every pause must be closed: while the resident is still asked, the due moment is not
    known (closing the pause at now gives the earliest it can be).
    """
    _check(start, days, pauses)
    if any(end is None for _, end in pauses):
        raise ValueError("the due moment is not known while a pause is open")
    counted = _counted_days(start, calendar, _paused_spans(pauses, None))
    last = next(islice(counted, days - 1, None)) if days else _day(start)
    return datetime.combine(last, time.max, CHINA).astimezone(UTC)


def working_days_used(
    start: datetime, now: datetime, calendar: WorkingCalendar, pauses: Sequence[Pause]
) -> int:
    """How many working days of the time limit are used by ``now``, leaving out those
    the clock stood still; an open pause runs to ``now``."""
    _check(start, 0, pauses)
    _aware(now, "now")
    today = _day(now)
    counted = _counted_days(start, calendar, _paused_spans(pauses, now))
    return sum(1 for _ in takewhile(lambda day: day <= today, counted))


def clock_state(
    start: datetime,
    days: int,
    now: datetime,
    calendar: WorkingCalendar,
    pauses: Sequence[Pause],
) -> ClockState:
    """Paused while a pause is open; overdue past the due moment; a warning once 80 % of
    the working days are used; else on time."""
    _check(start, days, pauses)
    _aware(now, "now")
    if any(end is None for _, end in pauses):
        return "paused"
    if now > due_with_pauses(start, days, calendar, pauses):
        return "overdue"
    if working_days_used(start, now, calendar, pauses) >= WARNING_SHARE * days:
        return "warning"
    return "on-time"


def _counted_days(
    start: datetime, calendar: WorkingCalendar, paused: Sequence[tuple[date, date]]
) -> Iterator[date]:
    """The working days that count, in order, from the day after acceptance."""
    day, rest = _day(start), 0
    while True:
        day += timedelta(days=1)
        if not calendar.is_working_day(day):
            rest += 1
            if rest > LONGEST_REST:
                raise ValueError(f"the calendar has no working day in the {rest} days to {day}")
            continue
        rest = 0
        if not any(asked < day <= answered for asked, answered in paused):
            yield day


def _paused_spans(pauses: Sequence[Pause], now: datetime | None) -> list[tuple[date, date]]:
    """Each pause as (day asked, day answered): the days after the first, to the second
    inclusive, stand still. An open pause runs to ``now``."""
    spans = []
    for asked, answered in pauses:
        end = answered if answered is not None else now
        if end is not None:
            spans.append((_day(asked), _day(end)))
    return spans


def _check(start: datetime, days: int, pauses: Sequence[Pause]) -> None:
    _aware(start, "start")
    if days < 0:
        raise ValueError(f"a time limit cannot be negative ({days} working days)")
    for asked, answered in pauses:
        _aware(asked, "a pause's start")
        if asked < start:
            raise ValueError("a pause cannot begin before the application is accepted")
        if answered is not None and _aware(answered, "a pause's end") < asked:
            raise ValueError("a pause cannot end before it begins")


def _aware(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, not {moment!r}")
    return moment


def _day(moment: datetime) -> date:
    """The calendar day of a moment in China."""
    return moment.astimezone(CHINA).date()
