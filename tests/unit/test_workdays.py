"""Time limits in working days: the Chinese calendar, the holiday file, pauses (补正)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time

import pytest

from adapters.calendar_cn import ChineseCalendar, HolidayFileError, parse_holidays, shipped_holidays
from vault.workdays import (
    CHINA,
    Pause,
    add_working_days,
    clock_state,
    due_with_pauses,
    working_days_used,
)

CALENDAR = ChineseCalendar()
NO_ROWS = "date,kind,note\n"


def cst(year: int, month: int, day: int, hour: int = 9) -> datetime:
    return datetime(year, month, day, hour, tzinfo=CHINA)


def end_of(year: int, month: int, day: int) -> datetime:
    return datetime.combine(date(year, month, day), time.max, CHINA)


def test_spring_festival_2026_is_skipped_and_its_working_saturdays_count() -> None:
    # Accepted Fri 13 Feb: Sat 14 Feb is worked (调休), 15–23 Feb are off, Sat 28 Feb is worked.
    assert add_working_days(cst(2026, 2, 13), 5, CALENDAR) == end_of(2026, 2, 27)
    assert add_working_days(cst(2026, 2, 13), 6, CALENDAR) == end_of(2026, 2, 28)


def test_national_day_2026_is_skipped() -> None:
    # Accepted Wed 30 Sep: 1–7 Oct are off, Thu 8, Fri 9 and the worked Sat 10 Oct count.
    assert add_working_days(cst(2026, 9, 30), 3, CALENDAR) == end_of(2026, 10, 10)


@pytest.mark.parametrize(
    ("accepted", "due"),
    [
        (cst(2025, 12, 31), end_of(2026, 1, 4)),  # after New Year's Day, Sun 4 Jan is worked
        (cst(2026, 9, 18), end_of(2026, 9, 20)),  # before National Day, Sun 20 Sep is worked
    ],
)
def test_an_adjusted_working_sunday_counts(accepted: datetime, due: datetime) -> None:
    assert add_working_days(accepted, 1, CALENDAR) == due


def test_the_due_moment_is_utc_at_the_end_of_the_last_day_in_china() -> None:
    due = add_working_days(cst(2026, 3, 2), 1, CALENDAR)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 3, 3, 15, 59, 59, 999999, tzinfo=UTC)


def test_the_day_of_acceptance_is_the_day_in_china() -> None:
    late_monday = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 23:30 Monday in China
    early_tuesday = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)  # 00:30 Tuesday in China
    assert add_working_days(late_monday, 1, CALENDAR) == end_of(2026, 3, 3)
    assert add_working_days(early_tuesday, 1, CALENDAR) == end_of(2026, 3, 4)


def test_zero_days_is_due_at_the_end_of_the_day_of_acceptance() -> None:
    assert add_working_days(cst(2026, 3, 7), 0, CALENDAR) == end_of(2026, 3, 7)
    assert clock_state(cst(2026, 3, 7), 0, cst(2026, 3, 7, 10), CALENDAR, ()) == "warning"


def test_a_year_beyond_the_package_falls_back_to_monday_to_friday_as_an_estimate() -> None:
    calendar = ChineseCalendar(NO_ROWS)
    assert calendar.knows(2026)
    assert not calendar.knows(2027)
    # Fri 1 Jan 2027 is New Year's Day, but nobody told us yet: Mon 4 Jan is day one.
    assert add_working_days(cst(2026, 12, 31), 2, calendar) == end_of(2027, 1, 4)


def test_an_operators_rows_make_a_year_known_and_win() -> None:
    # Invented rows, for the test only: they are not the State Council's arrangement.
    rows = NO_ROWS + "2027-01-08,holiday,test\n2027-01-09,workday,test\n"
    calendar = ChineseCalendar(rows)
    assert calendar.knows(2027)
    assert not calendar.is_working_day(date(2027, 1, 8))
    assert add_working_days(cst(2027, 1, 7), 1, calendar) == end_of(2027, 1, 9)


def test_the_shipped_holiday_file_loads() -> None:
    parse_holidays(shipped_holidays())
    assert ChineseCalendar().knows(2026)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the header must be date,kind,note"),
        ("# note\ndate,kind\n", "line 2: the header must be date,kind,note"),
        (NO_ROWS + "2027-01-01,holiday\n", "line 2: expected 3 fields, found 2"),
        (NO_ROWS + "2027-1-1,holiday,x\n", "line 2: date '2027-1-1' is not YYYY-MM-DD"),
        (NO_ROWS + "\n2027-02-30,holiday,x\n", "line 3: date '2027-02-30' is not YYYY-MM-DD"),
        (NO_ROWS + "2027-01-01,day-off,x\n", "line 2: kind 'day-off' is not holiday or workday"),
        (NO_ROWS + "2027-01-04,workday,x\n", "line 2: 2027-01-04 is a weekday, already worked"),
        (
            NO_ROWS + "2027-01-01,holiday,x\n# c\n2027-01-01,holiday,y\n",
            "line 4: 2027-01-01 is already on line 2",
        ),
    ],
)
def test_a_malformed_holiday_file_is_refused_naming_its_line(text: str, message: str) -> None:
    with pytest.raises(HolidayFileError, match=f"^holidays.csv {message}$"):
        ChineseCalendar(text)


ACCEPTED = cst(2026, 3, 2)  # a Monday; five working days are due at the end of Mon 9 Mar
ASKED, ANSWERED = cst(2026, 3, 4, 15), cst(2026, 3, 6, 10)  # Wed to Fri


def test_the_clock_stands_still_from_the_day_after_asking_to_the_day_of_the_answer() -> None:
    assert add_working_days(ACCEPTED, 5, CALENDAR) == end_of(2026, 3, 9)
    # Thu 5 and Fri 6 stand still; Tue 3, Wed 4, Mon 9, Tue 10, Wed 11 count.
    pauses: list[Pause] = [(ASKED, ANSWERED)]
    assert due_with_pauses(ACCEPTED, 5, CALENDAR, pauses) == end_of(2026, 3, 11)
    assert working_days_used(ACCEPTED, cst(2026, 3, 9), CALENDAR, pauses) == 3


def test_while_waiting_for_the_resident_the_clock_is_paused() -> None:
    waiting: list[Pause] = [(ASKED, None)]
    now = cst(2026, 3, 12)
    assert clock_state(ACCEPTED, 5, now, CALENDAR, waiting) == "paused"
    assert working_days_used(ACCEPTED, now, CALENDAR, waiting) == 2
    with pytest.raises(ValueError, match="not known while a pause is open"):
        due_with_pauses(ACCEPTED, 5, CALENDAR, waiting)


def test_the_clock_goes_from_on_time_to_warning_to_overdue() -> None:
    pauses: list[Pause] = [(ASKED, ANSWERED)]
    states = [
        clock_state(ACCEPTED, 5, now, CALENDAR, pauses)
        for now in (cst(2026, 3, 9), cst(2026, 3, 10), end_of(2026, 3, 11), cst(2026, 3, 12, 0))
    ]
    assert states == ["on-time", "warning", "warning", "overdue"]


def test_a_pause_within_one_day_stops_nothing() -> None:
    pauses: list[Pause] = [(cst(2026, 3, 4, 10), cst(2026, 3, 4, 16))]
    assert due_with_pauses(ACCEPTED, 5, CALENDAR, pauses) == end_of(2026, 3, 9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: add_working_days(datetime(2026, 3, 2), 1, CALENDAR), "start must be"),
        (lambda: add_working_days(ACCEPTED, -1, CALENDAR), "cannot be negative"),
        (lambda: working_days_used(ACCEPTED, datetime(2026, 3, 5), CALENDAR, ()), "now must be"),
        (
            lambda: due_with_pauses(ACCEPTED, 1, CALENDAR, [(datetime(2026, 3, 3), None)]),
            "a pause's start must be",
        ),
        (
            lambda: due_with_pauses(ACCEPTED, 1, CALENDAR, [(cst(2026, 3, 1), cst(2026, 3, 3))]),
            "before the application is accepted",
        ),
        (
            lambda: due_with_pauses(ACCEPTED, 1, CALENDAR, [(ANSWERED, ASKED)]),
            "cannot end before it begins",
        ),
    ],
)
def test_naive_moments_and_impossible_limits_are_refused(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call()


class NeverWorking:
    def is_working_day(self, day: date) -> bool:
        return False

    def knows(self, year: int) -> bool:
        return True


def test_a_calendar_without_working_days_is_refused_rather_than_searched_forever() -> None:
    with pytest.raises(ValueError, match="no working day in the 32 days to 2026-04-03"):
        add_working_days(ACCEPTED, 1, NeverWorking())
