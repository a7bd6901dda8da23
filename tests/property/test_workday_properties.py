"""Invariant 10: working days follow the calendar, and the clock stands still while the
resident is asked for more."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from adapters.calendar_cn import ChineseCalendar
from vault.workdays import (
    CHINA,
    Pause,
    add_working_days,
    clock_state,
    due_with_pauses,
    working_days_used,
)

CALENDAR = ChineseCalendar()
ONE_DAY = timedelta(days=1)

starts = st.datetimes(
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2026, 12, 31, 23, 59),
    timezones=st.sampled_from([CHINA, UTC, timezone(timedelta(hours=-5))]),
)
limits = st.integers(0, 60)
offsets = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=120))
pause_offsets = st.lists(st.tuples(offsets, offsets), max_size=4)


def day_of(moment: datetime) -> date:
    return moment.astimezone(CHINA).date()


def days_after(first: date, last: date) -> list[date]:
    """The days after ``first``, up to ``last`` inclusive."""
    return [first + ONE_DAY * n for n in range(1, (last - first).days + 1)]


def counted_one_by_one(start: datetime, days: int, paused: set[date]) -> datetime:
    """The end of the ``days``-th working day after acceptance, not paused, day by day."""
    day, counted = day_of(start), 0
    while counted < days:
        day += ONE_DAY
        counted += CALENDAR.is_working_day(day) and day not in paused
    return datetime.combine(day, time.max, CHINA)


def paused_days(pauses: list[Pause]) -> set[date]:
    return {
        day
        for asked, answered in pauses
        if answered is not None
        for day in days_after(day_of(asked), day_of(answered))
    }


def as_pauses(start: datetime, spans: list[tuple[timedelta, timedelta]]) -> list[Pause]:
    return [(start + begin, start + begin + length) for begin, length in spans]


@given(start=starts, days=limits)
def test_the_due_moment_is_the_end_of_the_nth_working_day_counted_one_by_one(
    start: datetime, days: int
) -> None:
    due = add_working_days(start, days, CALENDAR)
    assert due == counted_one_by_one(start, days, set())
    assert due.tzinfo is UTC


@given(start=starts, elapsed=offsets)
def test_working_days_used_are_the_working_days_begun_since_acceptance(
    start: datetime, elapsed: timedelta
) -> None:
    now = start + elapsed
    begun = days_after(day_of(start), day_of(now))
    expected = sum(CALENDAR.is_working_day(day) for day in begun)
    assert working_days_used(start, now, CALENDAR, ()) == expected


@given(start=starts, days=st.integers(1, 60))
def test_the_last_day_is_used_from_its_first_moment_to_the_due_moment(
    start: datetime, days: int
) -> None:
    due = add_working_days(start, days, CALENDAR)
    last_day_begins = datetime.combine(day_of(due), time.min, CHINA)
    assert working_days_used(start, due, CALENDAR, ()) == days
    assert working_days_used(start, last_day_begins, CALENDAR, ()) == days
    assert working_days_used(start, last_day_begins - timedelta.resolution, CALENDAR, ()) == (
        days - 1
    )


@given(start=starts, days=limits, spans=pause_offsets, elapsed=offsets)
def test_pauses_push_the_due_moment_later_and_leave_other_days_counted(
    start: datetime, days: int, spans: list[tuple[timedelta, timedelta]], elapsed: timedelta
) -> None:
    pauses = as_pauses(start, spans)
    still = paused_days(pauses)
    due = due_with_pauses(start, days, CALENDAR, pauses)
    assert due >= add_working_days(start, days, CALENDAR)
    assert due == counted_one_by_one(start, days, still)

    now = start + elapsed
    begun = days_after(day_of(start), day_of(now))
    stood_still = sum(CALENDAR.is_working_day(day) for day in begun if day in still)
    without = working_days_used(start, now, CALENDAR, ())
    assert working_days_used(start, now, CALENDAR, pauses) == without - stood_still


@given(start=starts, asked=offsets, elapsed=offsets)
def test_an_open_pause_runs_to_now(start: datetime, asked: timedelta, elapsed: timedelta) -> None:
    now = start + max(asked, elapsed)
    used_open = working_days_used(start, now, CALENDAR, [(start + asked, None)])
    assert used_open == working_days_used(start, now, CALENDAR, [(start + asked, now)])
    assert clock_state(start, 5, now, CALENDAR, [(start + asked, None)]) == "paused"


@given(start=starts, days=limits, moments=st.lists(offsets, min_size=2, max_size=6))
def test_without_pauses_the_clock_only_moves_from_on_time_to_warning_to_overdue(
    start: datetime, days: int, moments: list[timedelta]
) -> None:
    order = ["on-time", "warning", "overdue"]
    states = [clock_state(start, days, start + moment, CALENDAR, ()) for moment in sorted(moments)]
    ranks = [order.index(state) for state in states]
    assert ranks == sorted(ranks)
