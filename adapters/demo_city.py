"""The demo city's applications (办件) for `civicvault serve --demo`: six weeks of a
district's one-window work, in every state — approved and rated, rejected and rated,
returned for a supplement, in review at its second step, on time, in warning, overdue,
withdrawn — at windows of both districts and online.

The history is made as it would have happened: on a :class:`DemoClock` wound back six weeks
and moved forward step by step, so every event carries the time of its day, in the order
of the days, and due dates and overdue applications come out of the working-day calendar
as they would in production.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapters.samples import sample_pdf, sample_png
from adapters.wiring import Services
from policy.scales import Grade
from vault.application import Decision
from vault.inputs import DocumentDetails, GradeUpdate

HISTORY = timedelta(days=42)
"""How far back the demo city's history begins."""


class DemoClock:
    """Real time, except while the demo seeds its history: then the time the seed winds it
    to, which only moves forward and never passes real time."""

    def __init__(self) -> None:
        self._at: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at or datetime.now(UTC)

    def wind_to(self, moment: datetime) -> None:
        with self._lock:
            if self._at is not None and moment < self._at:
                raise ValueError("the demo's history only moves forward")
            self._at = min(moment, datetime.now(UTC))

    def resume(self) -> None:
        """Back to real time."""
        with self._lock:
            self._at = None


@dataclass(frozen=True)
class Neighbour:
    resident_id: str
    name: str
    grade: Grade
    documents: tuple[str, ...]


NEIGHBOURS = (
    Neighbour("liu-yang", "刘洋", Grade.A, ("household-register", "income-proof")),
    Neighbour("zhao-min", "赵敏", Grade.B, ("household-register", "marriage-cert")),
    Neighbour("sun-li", "孙丽", Grade.A, ("household-register",)),
    Neighbour("zhou-qiang", "周强", Grade.A,
              ("household-register", "income-proof", "disability-cert")),
    Neighbour("wu-xia", "吴霞", Grade.C, ()),
)
"""Residents of the city's communities, each with an ID card issued by 公安局 and what else
their applications take from the library."""

SAYS = {"household-register": {"address": "滨江市江滨路8号"},
        "income-proof": {"monthly_income": "1800"}}
"""What the neighbours' other documents say, for forms to be filled from (反填)."""

CLERKS = {"heping-lane": "clerk-wang", "anle": "clerk-li", "xinhua-north": "clerk-sun",
          "riverside": "clerk-zhou", "wangjiang": "clerk-wu"}
"""A clerk at the window of each community."""


def id_card_attributes(name: str, n: int) -> dict[str, str]:
    """What a demo ID card says (a number no real card has: its checksum is wrong)."""
    return {"name": name, "number": f"1101011960010{n:04d}X"[:18],
            "birth_date": f"196{n % 10}-0{1 + n % 9}-1{n % 10}", "address": "滨江市和平里"}


def seed_applications(services: Services, clock: DemoClock | None, start: datetime) -> int:
    """The city's applications, their history from ``start`` (six weeks ago) to now; with
    no ``clock`` to wind, all of it happens now (nothing is overdue then). Returns how
    many applications it made."""
    def day(days_ago: float) -> None:
        if clock is not None:
            clock.wind_to(start + HISTORY - timedelta(days=days_ago))

    apps, documents = services.applications, services.documents
    day(41)
    for n, person in enumerate(NEIGHBOURS):
        documents.issue(
            "public-security", "officer-zhao", person.resident_id,
            io.BytesIO(sample_png(seed=20 + n)),
            DocumentDetails("id-card", f"居民身份证 {person.name}", "image/png", "id-card.png",
                            expires_at=services.clock.now() + timedelta(days=3650),
                            attributes=id_card_attributes(person.name, 20 + n)),
        )
        for doc_type in person.documents:
            filed = documents.submit(
                person.resident_id, io.BytesIO(sample_pdf(f"{doc_type} {person.resident_id}")),
                DocumentDetails(doc_type, f"{doc_type} {person.name}", "application/pdf",
                                f"{doc_type}.pdf", attributes=SAYS.get(doc_type, {})),
            )
            if doc_type == "disability-cert":
                documents.verify("disabled-persons", "officer-he", filed.value.id)
    services.residents.record_grades(
        [GradeUpdate(p.resident_id, p.grade, services.clock.now(), 1) for p in NEIGHBOURS]
    )
    services.view_runner.catch_up()  # the library, for the applications to take from

    def at_window(
        resident_id: str, service_id: str, unit: str, *, missing: tuple[str, ...] = (),
        form: dict[str, str] | None = None,
    ) -> str:
        code = apps.authorization_code(resident_id, service_id).code
        accepted = apps.apply(resident_id, service_id, unit=unit, clerk=CLERKS[unit],
                              authorization_code=code, missing=missing, form=form)
        return str(accepted.application.id)

    def online(resident_id: str, service_id: str) -> str:
        return str(apps.apply(resident_id, service_id).application.id)

    def decide(application_id: str, department: str, officer: str, decision: Decision,
               reason: str, *asked_for: str) -> None:
        apps.decide(application_id, department=department, officer=officer,
                    decision=decision, reason=reason, asked_for=asked_for)

    steps: list[tuple[float, Callable[[], object]]] = []
    made: dict[str, str] = {}

    def then(days_ago: float, step: Callable[[], object]) -> None:
        steps.append((days_ago, step))

    # Returned for this year's income proof, supplied from home, approved on time at a
    # community window of 东城区, and rated 5.
    then(38, lambda: made.setdefault("allowance", at_window(
        "zhang-wei", "subsistence-allowance", "heping-lane", form={"name": "张伟"})))
    then(36, lambda: decide(made["allowance"], "civil-affairs", "officer-li", "return",
                            "请提供近三个月的收入证明", "income-proof"))
    then(35, lambda: apps.supply("zhang-wei", made["allowance"], "income-proof", str(
        documents.submit("zhang-wei", io.BytesIO(sample_pdf("Income proof, last 3 months")),
                         DocumentDetails("income-proof", "收入证明 张伟 近三个月",
                                         "application/pdf", "income.pdf")).value.id)))
    then(31, lambda: decide(made["allowance"], "civil-affairs", "officer-li", "approve",
                            "家庭收入低于低保标准，符合条件"))
    then(30, lambda: apps.rate("zhang-wei", made["allowance"], 5, "材料都不用再交，很方便"))
    # Rejected, online, and rated 2.
    then(35, lambda: made.setdefault("assistance", online("liu-yang", "temporary-assistance")))
    then(33, lambda: decide(made["assistance"], "civil-affairs", "officer-li", "reject",
                            "家庭收入高于临时救助标准"))
    then(32, lambda: apps.rate("liu-yang", made["assistance"], 2, None))
    # Overdue: a birth registration (one working day) at 新华北社区, never decided.
    then(25, lambda: made.setdefault("birth", at_window(
        "sun-li", "birth-registration", "xinhua-north", missing=("marriage-cert",))))
    # In warning: a subsistence allowance of 西城区 most of its 20 working days in.
    then(24, lambda: made.setdefault("warning", at_window(
        "liu-yang", "subsistence-allowance", "riverside")))
    # Overdue: an elderly card online (three working days).
    then(20, lambda: made.setdefault("elderly", online("wu-xia", "elderly-card")))
    # Returned for a supplement at 望江社区: the clock stands still until it comes.
    then(14, lambda: made.setdefault("returned", at_window(
        "zhao-min", "birth-registration", "wangjiang")))
    then(13.9, lambda: decide(made["returned"], "health", "officer-qin", "return",
                              "户口簿页面不清晰，请重新提供", "household-register"))
    # In review at its second step: 残联 approved, 民政局 to decide.
    then(10, lambda: made.setdefault("disability", at_window(
        "zhou-qiang", "disability-subsidy", "anle")))
    then(8, lambda: decide(made["disability"], "disabled-persons", "officer-he", "approve",
                           "残疾等级核实无误"))
    # Withdrawn by the resident.
    then(3, lambda: made.setdefault("withdrawn", online("li-na", "elderly-card")))
    then(2, lambda: apps.withdraw("li-na", made["withdrawn"]))
    # 告知承诺: 赵敏 has no income proof; her signed commitment stands in for it.
    then(1, lambda: made.setdefault("committed", str(apps.apply(
        "zhao-min", "temporary-assistance", commitments=("income-proof",)).application.id)))
    # Just accepted, on time.
    then(0.2, lambda: made.setdefault("fresh", online("zhou-qiang", "temporary-assistance")))

    for days_ago, step in sorted(steps, key=lambda s: -s[0]):
        day(days_ago)
        step()
    return len(made)
