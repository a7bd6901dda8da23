"""The applications' read models — each resident's list, each department's queue and
supervision's daily tallies — after any history of applications, followed in any number of
batches, equal a rebuild from zero and a fold of the events themselves (issue 16, item 4:
"figures … equal a rebuild")."""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.settings import Settings
from adapters.wiring import Services, open_services
from policy.scales import Grade
from projections.projector import china_day, due_order
from tests.property.test_replay_properties import fold_log
from tests.support import MovableClock, another_runner
from vault.application import Application
from vault.errors import VaultError
from vault.inputs import DocumentDetails, GradeUpdate
from vault.supervision import Tally, Where

RESIDENTS = ("r1", "r2", "r3")
LACKS = {"r3": ("household-register", "income-proof")}
"""What a resident's library lacks: their applications are accepted without it (容缺)."""
SERVICES = ("elderly-card", "disability-subsidy", "temporary-assistance")
DEPARTMENTS = ("civil-affairs", "disabled-persons")
T0 = datetime(2026, 3, 2, 1, tzinfo=UTC)  # a Monday, 09:00 in China

command = st.one_of(
    st.tuples(st.just("apply"), st.sampled_from(RESIDENTS), st.sampled_from(SERVICES)),
    st.tuples(st.just("decide"), st.integers(0, 5), st.sampled_from(DEPARTMENTS),
              st.sampled_from(["approve", "approve", "return", "reject"])),
    st.tuples(st.just("supply"), st.integers(0, 5)),
    st.tuples(st.just("commit"), st.integers(0, 5)),
    st.tuples(st.just("withdraw"), st.integers(0, 5)),
    st.tuples(st.just("rate"), st.integers(0, 5), st.integers(1, 5)),
    st.tuples(st.just("wait"), st.integers(1, 400)),
)


def _upload(services: Services, resident: str, doc_type: str) -> str:
    return str(services.documents.submit(
        resident, io.BytesIO(f"{resident} {doc_type}".encode()),
        DocumentDetails(doc_type, doc_type, "application/pdf"),
    ).value.id)


def _prepare(services: Services, clock: MovableClock) -> None:
    for number, resident in enumerate(RESIDENTS, 1):
        for doc_type in ("id-card", "household-register", "income-proof"):
            if doc_type not in LACKS.get(resident, ()):
                _upload(services, resident, doc_type)
        certificate = _upload(services, resident, "disability-cert")
        services.documents.verify("disabled-persons", "officer-he", certificate)
        services.residents.record_grades([GradeUpdate(resident, Grade.A, clock.now(), number)])
    services.view_runner.catch_up()


def _run(services: Services, clock: MovableClock, made: list[str], step: tuple[Any, ...]) -> None:
    apps = services.applications
    kind = step[0]
    if kind == "wait":
        clock.advance(timedelta(hours=step[1]))
        return
    if kind == "apply":
        needs = {m.doc_type for m in services.catalogues.current().service(step[2]).materials}
        missing = tuple(d for d in LACKS.get(step[1], ()) if d in needs)
        made.append(str(apps.apply(step[1], step[2], missing=missing).application.id))
        return
    if not made:
        return
    application = apps.application(made[step[1] % len(made)])
    try:
        if kind == "decide":
            apps.decide(application.id, department=step[2], officer="o", decision=step[3],
                        reason="r", asked_for=("income-proof",) if step[3] == "return" else ())
        elif kind == "supply":
            fresh = _upload(services, application.resident_id, "income-proof")
            apps.supply(application.resident_id, application.id, "income-proof", fresh)
        elif kind == "commit":  # 告知承诺 in place of what is missing: no view moves
            apps.commit(application.resident_id, application.id, "income-proof")
        elif kind == "withdraw":
            apps.withdraw(application.resident_id, application.id)
        else:
            apps.rate(application.resident_id, application.id, step[2], None)
    except VaultError:
        pass  # refused: nothing changes, which the fold below sees too


def _snapshot(services: Services) -> dict[str, Any]:
    views = services.views
    everywhere = {"", *(u.id for u in services.catalogues.current().units())}
    return {
        "applications": {r: views.applications(r, limit=1000) for r in RESIDENTS},
        "queues": {d: [(q.application.application_id, q.due)
                       for q in views.queue(d, limit=1000)] for d in DEPARTMENTS},
        "tallies": sorted(views.tallies(units=everywhere, since=None, until=None),
                          key=lambda t: repr(t[0])),
    }


def _tallies_from_the_events(services: Services) -> dict[Where, Tally]:
    """Each application event added to its day, as supervision counts, straight from the
    log."""
    tallies: dict[tuple[str, Where], Tally] = {}
    where: dict[Any, Where] = {}
    start = 1
    while page := services.events.select_notifications(start, 200):
        for notification in page:
            event: Any = services.application.mapper.to_domain_event(notification)
            name = type(event).__qualname__
            if not name.startswith("Application."):
                continue
            if name == "Application.Accepted":
                where[event.originator_id] = Where(event.unit or "", event.department,
                                                   event.service_id)
                sources = [m["source"] for m in event.materials]
                counted = Tally(accepted=1, materials_reused=sources.count("library"),
                                trips_saved=int(event.channel == "online"))
                day = china_day(event.accepted_at)
            elif name == "Application.Decided" and event.working_days is not None:
                counted = Tally(decided=1, on_time=int(event.on_time),
                                working_days=event.working_days)
                day = china_day(event.at)
            elif name in ("Application.Supplied", "Application.MissingSupplied"):
                counted, day = Tally(materials_brought=1), china_day(event.at)
            elif name == "Application.Rated":
                counted = Tally(rated=1, rating_sum=event.score)
                day = china_day(event.at)
            else:
                continue
            key = (day, where[event.originator_id])
            tallies[key] = tallies.get(key, Tally()) + counted
        start = page[-1].id + 1
    summed: dict[Where, Tally] = {}
    for (_, place), tally in tallies.items():
        summed[place] = summed.get(place, Tally()) + tally
    return summed


def _assert_views_match_the_fold(services: Services, snapshot: dict[str, Any]) -> None:
    folded = [a for a in fold_log(services).values() if isinstance(a, Application)]
    for resident in RESIDENTS:
        # newest first: the fold holds them in the order the log made them
        mine = [a for a in reversed(folded) if a.resident_id == resident]
        rows = snapshot["applications"][resident]
        assert [r.application_id for r in rows] == [str(a.id) for a in mine]
        for row, application in zip(rows, mine, strict=True):
            assert (row.status, row.due_at, row.decided_at, row.service_id, row.department) \
                == (application.status.value, application.due_at, application.decided_at,
                    application.service_id, application.department)
            assert row.rating == (application.rating[0] if application.rating else None)
    for department in DEPARTMENTS:
        waiting = sorted(
            ((str(a.id), due_order(a.due_at)) for a in folded if department in a.waiting_on),
            key=lambda entry: entry[1],
        )
        queue = snapshot["queues"][department]
        assert sorted(queue) == sorted(waiting)
        assert [due for _, due in queue] == sorted(due for _, due in queue)
    assert dict(snapshot["tallies"]) == _tallies_from_the_events(services)


@settings(max_examples=8, deadline=None)
@given(program=st.lists(command, min_size=3, max_size=25), seed=st.integers(0, 2**16))
def test_application_views_equal_a_rebuild_and_the_events(
    fresh_settings: Callable[[], Settings], program: list[tuple[Any, ...]], seed: int
) -> None:
    clock = MovableClock(T0)
    services = open_services(fresh_settings(), clock=clock)
    try:
        _prepare(services, clock)
        rng = random.Random(seed)
        made: list[str] = []
        fixed = [("apply", "r1", "disability-subsidy"), ("apply", "r2", "elderly-card"),
                 ("decide", 0, "disabled-persons", "return"), ("wait", 30), ("supply", 0),
                 ("decide", 1, "civil-affairs", "approve"), ("rate", 1, 4),
                 ("apply", "r3", "disability-subsidy"), ("wait", 5), ("supply", 2),
                 ("apply", "r3", "temporary-assistance"), ("commit", 3)]
        for step in itertools.chain(fixed, program):
            _run(services, clock, made, step)
            if rng.random() < 0.3:
                services.view_runner.catch_up()
        services.view_runner.catch_up()
        followed = _snapshot(services)
        _assert_views_match_the_fold(services, followed)
        another_runner(services, rebuild_batch=rng.randint(1, 9)).rebuild()
        assert _snapshot(services) == followed
    finally:
        services.close()
