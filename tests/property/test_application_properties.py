"""Any history of commands on an application — allowed or refused — leaves a state that its
events alone rebuild (invariant 1), and that is always coherent: a decided application has
its decision time and no running clock pause, an approved one has every step approved, and
the clock's pauses follow one another. What its events say for the read models — whom it
waits on, when it is due, how long it took and whether on time — is what the aggregate and
the working-day calendar say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.calendar_cn import ChineseCalendar
from vault.application import Application, ApplicationStatus
from vault.errors import VaultError
from vault.workdays import add_working_days, due_with_pauses, working_days_used

CALENDAR = ChineseCalendar()

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
DEPARTMENTS = ["disabled-persons", "civil-affairs", "health"]
DOC_TYPES = ["income-proof", "household-register"]

steps = st.lists(
    st.lists(st.sampled_from(DEPARTMENTS[:2]), min_size=1, max_size=2, unique=True),
    min_size=1, max_size=3,
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("decide"), st.sampled_from(DEPARTMENTS),
                  st.sampled_from(["approve", "return", "reject"]),
                  st.lists(st.sampled_from(DOC_TYPES), max_size=2, unique=True)),
        st.tuples(st.just("supply"), st.sampled_from(DOC_TYPES)),
        st.tuples(st.just("withdraw")),
        st.tuples(st.just("rate"), st.integers(0, 6)),
    ),
    max_size=15,
)


def _apply(application: Application, action: tuple[Any, ...], at: datetime) -> None:
    kind = action[0]
    try:
        if kind == "decide":
            _, department, decision, asked = action
            last = decision == "approve" and application.status.is_open and (
                application.at_current_step(department)
                and application.is_last_approval(department)
            )
            application.decide(
                department=department, officer="o", decision=decision, reason="r",
                asked_for=asked, result_document_id="result" if last else None, at=at,
                calendar=CALENDAR,
            )
        elif kind == "supply":
            application.supply(doc_type=action[1], document_id="d", trust_level="C",
                               source="supplement", at=at, calendar=CALENDAR)
        elif kind == "withdraw":
            application.withdraw(at)
        else:
            application.rate(action[1], None, at)
    except (VaultError, ValueError):
        pass  # a refused command changes nothing, which the replay below also checks


@given(steps=steps, actions=actions)
def test_any_history_replays_to_the_same_coherent_state(
    steps: list[list[str]], actions: list[tuple[Any, ...]]
) -> None:
    application = Application(
        resident_id="r1", service_id="disability-subsidy", department="civil-affairs",
        channel="online", unit=None, clerk=None, tracks=[], consent_ids=["c"], materials=[],
        form={}, steps=steps, time_limit_days=10, accepted_at=T0,
        due_at=add_working_days(T0, 10, CALENDAR), catalogue_version="c",
        policy_version="p", timestamp=T0,
    )
    for number, action in enumerate(actions, 1):
        _apply(application, action, T0 + timedelta(hours=17 * number))
    events = application.collect_events()
    replayed = reduce(lambda state, event: event.mutate(state), events, None)
    assert replayed is not None
    assert vars(replayed) == vars(application)

    state = None
    for event in events:
        state = event.mutate(state)
        assert state is not None
        if hasattr(event, "waiting_on"):
            assert tuple(event.waiting_on) == state.waiting_on
        running = state.status in (ApplicationStatus.ACCEPTED, ApplicationStatus.IN_REVIEW)
        assert state.due_at == (
            due_with_pauses(T0, 10, CALENDAR, state.pauses) if running else None
        )
        if getattr(event, "working_days", None) is not None:
            assert event.working_days == working_days_used(T0, event.at, CALENDAR, state.pauses)
            assert event.on_time == (
                event.at <= due_with_pauses(T0, 10, CALENDAR, state.pauses)
            )

    status = application.status
    assert (application.decided_at is not None) == (
        status in (ApplicationStatus.APPROVED, ApplicationStatus.REJECTED)
    )
    if not status.is_open:
        assert all(end is not None for _, end in application.pauses)
    if status is ApplicationStatus.APPROVED:
        assert all(s.status == "approved" for s in application.steps)
        assert application.result_document_id == "result"
    assert (status is ApplicationStatus.RETURNED) == bool(application.asked_for)
    ends = [t for pause in application.pauses for t in pause if t is not None]
    assert ends == sorted(ends)
