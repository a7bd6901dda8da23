"""The application's life (办件): accepted, reviewed step by step, returned for a supplement
(the clock stands still), decided, withdrawn, rated — each guard with its named error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.calendar_cn import ChineseCalendar
from vault.application import Application, ApplicationStatus
from vault.errors import AlreadyRated, ApplicationClosed, InvalidInput, NotAReviewer, StepMoved
from vault.workdays import add_working_days

CALENDAR = ChineseCalendar()

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _accepted(steps: list[list[str]] | None = None) -> Application:
    return Application(
        resident_id="zhang-wei", service_id="disability-subsidy", department="civil-affairs",
        channel="window",
        unit="anle", clerk="clerk-wang", tracks=["reuse"], consent_ids=["c-1"],
        materials=[{"doc_type": "id-card", "source": "library", "document_id": "d-1",
                    "trust_level": "C", "due_at": None}],
        form={"name": {"value": "张伟", "source": "id-card.name"}},
        steps=steps or [["disabled-persons"], ["civil-affairs"]],
        time_limit_days=15, accepted_at=T0, due_at=add_working_days(T0, 15, CALENDAR),
        catalogue_version="c" * 64,
        policy_version="p" * 64, timestamp=T0,
    )


def _decide(application: Application, department: str, decision: str = "approve",
            **overrides: Any) -> None:
    args: dict[str, Any] = {
        "department": department, "officer": f"officer-of-{department}",
        "decision": decision, "reason": "ok", "asked_for": [], "result_document_id": None,
        "at": T0 + timedelta(days=1), "calendar": CALENDAR,
    }
    args.update(overrides)
    application.decide(**args)


def test_steps_are_reviewed_in_order_and_the_last_approval_decides() -> None:
    application = _accepted()
    assert application.status is ApplicationStatus.ACCEPTED
    assert application.number == f"20260302-{application.id.hex[:6].upper()}"
    with pytest.raises(StepMoved):
        _decide(application, "civil-affairs")  # its step has not come yet
    _decide(application, "disabled-persons")
    assert (application.status, application.current_step) == (ApplicationStatus.IN_REVIEW, 1)
    with pytest.raises(StepMoved):
        _decide(application, "disabled-persons")  # its step has moved on
    with pytest.raises(ValueError, match="result document"):
        _decide(application, "civil-affairs")
    _decide(application, "civil-affairs", result_document_id="d-9")
    assert application.status is ApplicationStatus.APPROVED
    assert application.result_document_id == "d-9"
    assert application.decided_at == T0 + timedelta(days=1)
    with pytest.raises(ApplicationClosed):
        _decide(application, "civil-affairs", result_document_id="d-9")


def test_departments_of_one_step_review_side_by_side() -> None:
    application = _accepted([["housing", "civil-affairs"]])
    assert not application.is_last_approval("housing")
    _decide(application, "housing")
    assert application.status is ApplicationStatus.IN_REVIEW
    with pytest.raises(StepMoved):
        _decide(application, "housing")  # it has approved this step already
    assert application.is_last_approval("civil-affairs")
    _decide(application, "civil-affairs", result_document_id="d-9")
    assert application.status is ApplicationStatus.APPROVED


def test_a_department_that_reviews_no_step_is_refused() -> None:
    with pytest.raises(NotAReviewer):
        _decide(_accepted(), "tax")


def test_a_return_stops_the_clock_until_everything_asked_for_is_supplied() -> None:
    application = _accepted()
    with pytest.raises(InvalidInput, match="say which"):
        _decide(application, "disabled-persons", "return")
    asked_at = T0 + timedelta(days=1)
    _decide(application, "disabled-persons", "return",
            asked_for=["income-proof", "household-register"])
    assert application.status is ApplicationStatus.RETURNED
    assert application.pauses == [(asked_at, None)]
    with pytest.raises(StepMoved):
        _decide(application, "disabled-persons")  # waiting for the resident, not for it
    with pytest.raises(InvalidInput, match="was not asked for"):
        application.supply(doc_type="diploma", document_id="d-5", trust_level="C",
                           source="supplement", at=asked_at, calendar=CALENDAR)
    first, second = asked_at + timedelta(days=2), asked_at + timedelta(days=3)
    application.supply(doc_type="income-proof", document_id="d-2", trust_level="C",
                       source="supplement", at=first, calendar=CALENDAR)
    assert application.status is ApplicationStatus.RETURNED  # one still missing
    application.supply(doc_type="household-register", document_id="d-3", trust_level="D",
                       source="commitment", at=second, calendar=CALENDAR)
    assert application.status is ApplicationStatus.IN_REVIEW
    assert application.pauses == [(asked_at, second)]
    assert application.current_step == 0  # the step that asked reviews anew
    supplied = {m["doc_type"]: m["source"] for m in application.materials}
    assert supplied == {"id-card": "library", "income-proof": "supplement",
                        "household-register": "commitment"}
    _decide(application, "disabled-persons")
    assert application.current_step == 1


def test_a_rejection_decides_and_only_a_decided_application_is_rated_once() -> None:
    application = _accepted()
    with pytest.raises(ApplicationClosed, match="not decided"):
        application.rate(5, None, T0)
    _decide(application, "disabled-persons", "reject", reason="not eligible")
    assert application.status is ApplicationStatus.REJECTED
    application.rate(2, "太慢了", T0 + timedelta(days=2))
    assert application.rating == (2, "太慢了", T0 + timedelta(days=2))
    with pytest.raises(AlreadyRated):
        application.rate(5, None, T0 + timedelta(days=3))
    other = _accepted()
    _decide(other, "disabled-persons", "reject")
    with pytest.raises(ValueError, match="1 to 5"):
        other.rate(6, None, T0 + timedelta(days=2))


def test_an_open_application_is_withdrawn_and_its_pause_ends() -> None:
    application = _accepted()
    _decide(application, "disabled-persons", "return", asked_for=["income-proof"])
    withdrawn_at = T0 + timedelta(days=4)
    application.withdraw(withdrawn_at)
    assert application.status is ApplicationStatus.WITHDRAWN
    assert application.pauses[-1][1] == withdrawn_at
    with pytest.raises(ApplicationClosed):
        application.withdraw(withdrawn_at)
    with pytest.raises(ApplicationClosed):
        application.supply(doc_type="income-proof", document_id="d-2", trust_level="C",
                           source="supplement", at=withdrawn_at, calendar=CALENDAR)


def test_a_commitment_takes_the_place_of_a_missing_material_while_it_is_open() -> None:
    """告知承诺 after acceptance: only for what is still missing (容缺), only while open; the
    commitment stands in at trust level D with its words, and nothing else moves."""
    application = _accepted()
    with pytest.raises(ApplicationClosed, match="nothing is missing"):
        application.commit(doc_type="id-card", statement="本人承诺", at=T0)
    missing = {"doc_type": "income-proof", "source": "missing", "document_id": None,
               "trust_level": None, "due_at": T0 + timedelta(days=7)}
    application.materials.append(dict(missing))
    application.materials.append(dict(missing, doc_type="household-register"))
    before = (application.status, application.due_at, application.waiting_on)
    with pytest.raises(InvalidInput, match="id-card is not missing"):
        application.commit(doc_type="id-card", statement="本人承诺", at=T0)
    at = T0 + timedelta(hours=3)
    application.commit(doc_type="income-proof", statement="本人承诺：收入属实", at=at)
    assert application.still_missing == ("household-register",)
    assert application.materials[-1] == {
        "doc_type": "income-proof", "source": "commitment", "document_id": None,
        "trust_level": "D", "due_at": None, "statement": "本人承诺：收入属实"}
    assert (application.status, application.due_at, application.waiting_on) == before
    event = application.collect_events()[-1]
    assert isinstance(event, Application.MissingCommitted)
    assert (event.resident_id, event.doc_type, event.at) == ("zhang-wei", "income-proof", at)
    with pytest.raises(InvalidInput, match="income-proof is not missing"):
        application.commit(doc_type="income-proof", statement="本人承诺", at=at)
    application.withdraw(at)
    with pytest.raises(ApplicationClosed, match="withdrawn"):
        application.commit(doc_type="household-register", statement="本人承诺", at=at)
    assert application.still_missing == ("household-register",)
