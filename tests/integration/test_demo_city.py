"""`serve --demo` seeds a city whose six weeks of applications are in every state, with
times the working-day calendar makes of them: some overdue, one in warning, one waiting for
the resident, some decided and rated (issue 16, item 5)."""

from __future__ import annotations

from adapters.community import seed
from adapters.demo_city import DemoClock
from adapters.settings import Settings
from adapters.wiring import open_services
from vault.application import ApplicationStatus
from vault.supervision import figures

RESIDENTS = ("zhang-wei", "li-na", "liu-yang", "zhao-min", "sun-li", "zhou-qiang", "wu-xia")


def test_the_demo_city_has_applications_in_every_state(backend_settings: Settings) -> None:
    clock = DemoClock()
    with open_services(backend_settings, clock=clock) as services:
        assert seed(services, clock)
        assert not seed(services, clock)  # once
        services.view_runner.catch_up()
        apps = services.applications
        found = [apps.application(e.application_id)
                 for r in RESIDENTS for e in services.views.applications(r, limit=50)]
        assert {a.status for a in found} == set(ApplicationStatus)
        clocks = {apps.timing(a).clock for a in found}
        assert {"on-time", "warning", "overdue", "paused"} <= clocks
        assert {a.channel for a in found} == {"online", "window"}
        assert any(a.rating for a in found)
        sources = {v["source"] for a in found for v in a.form.values()}
        assert {"id-card.name", "household-register.address"} <= sources  # 反填
        now = clock.now()
        assert all(a.modified_on <= now for a in found)  # nothing in the future
        city = figures(services.views, services.catalogues.current(), unit="binjiang",
                       by="unit", since=None, until=None, now=now)
        rows = {f.key: f for f in city}
        assert {"binjiang", "dongcheng", "xicheng", "online"} <= set(rows)
        total = rows["binjiang"]
        assert total.accepted == len(found)
        assert total.overdue >= 2
        assert total.materials_brought >= 1
        assert total.rating_avg
        audit = services.audit.readjudicate()  # every acceptance right in its time
        assert (audit.acceptances, audit.acceptance_mismatches, audit.mismatches) == (
            len(found), [], [])
        overdue = services.views.overdue(now, units={"", "xinhua-north"}, limit=10)
        assert [e.application.service_id for e in overdue] == [
            "birth-registration", "elderly-card"]
