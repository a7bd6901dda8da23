"""A time copied into a view from its stored ISO text reads exactly as the time itself
stamped: text order stays time order, whichever way a row was written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import example, given
from hypothesis import strategies as st

from projections.schema import stamp, stamp_iso, unstamp
from vault.errors import InvalidInput
from vault.inputs import check_aware

zones = st.sampled_from(
    [None, UTC, UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]
)
# From year 2 (a zone's offset must not take the time below year 1), to show years
# before 1000 stamp at full width too.
moments = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1), timezones=zones
)


@given(moments)
@example(datetime(2026, 11, 27, 8, 0, tzinfo=UTC))  # no microseconds: isoformat omits them
@example(datetime(2026, 11, 27, 8, 0, 0, 1, tzinfo=UTC))
@example(datetime(2026, 11, 27, 8, 0, 0, 1, tzinfo=timezone(timedelta(hours=8))))
@example(datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
def test_a_stored_time_stamps_as_the_time_does(at: datetime) -> None:
    assert stamp_iso(at.isoformat()) == stamp(at)


@given(moments, moments)
def test_stamps_sort_as_their_times_do(a: datetime, b: datetime) -> None:
    if a.tzinfo is None or b.tzinfo is None:
        a, b = a.replace(tzinfo=UTC), b.replace(tzinfo=UTC)
    assert (stamp(a) < stamp(b)) == (a < b)


@given(moments.filter(lambda at: at.tzinfo is not None))
def test_a_stamped_stored_time_reads_back_as_the_same_moment(at: datetime) -> None:
    assert unstamp(stamp_iso(at.isoformat())) == at


def test_no_time_stamps_as_none() -> None:
    assert stamp_iso(None) is None


any_offset = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                           max_value=timedelta(hours=23, minutes=59)).map(timezone)


@given(st.datetimes(timezones=any_offset))
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))))
@example(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-10))))
def test_any_time_with_a_zone_is_taken_and_stamps_or_is_refused_as_bad_input(
    at: datetime,
) -> None:
    """Times from requests are checked with check_aware before anything stamps them:
    the edges of the calendar, which UTC cannot hold, are bad input, never a crash."""
    try:
        checked = check_aware("since", at)
    except InvalidInput:
        # Refused only where the moment, in UTC, falls outside years 1 to 9999.
        offset = at.utcoffset() or timedelta()
        naive_utc = at.replace(tzinfo=None)
        assert (naive_utc - datetime.min < offset) or (datetime.max - naive_utc < -offset)
        return
    assert unstamp(stamp(checked)) == at
