"""Applications on real stores (SQLite and PostgreSQL): accepted with materials from the
library under consents made for them, 容缺 only where allowed, reviewed step by step with
reads recorded as fetches, returned and supplied, decided with the result issued into the
library, raced, withdrawn and rated (issue 16, item 3; invariant 9)."""

from __future__ import annotations

import io
import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters.wiring import Services
from keys.receipts import verify_consent_receipt
from policy.catalogue import shipped_catalogue_text
from policy.scales import Grade, TrustLevel
from tests.support import MovableClock
from vault.application import Application, ApplicationStatus
from vault.errors import (
    AccessDenied,
    ApplicationClosed,
    ApplicationNotFound,
    CodeRefused,
    DocumentNotFound,
    InvalidInput,
    NotAReviewer,
    ServiceNotAcceptedHere,
    StepMoved,
)
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate


def _upload(services: Services, resident: str, doc_type: str) -> UUID:
    document = services.documents.submit(
        resident, io.BytesIO(f"{resident} {doc_type}".encode()),
        DocumentDetails(doc_type, doc_type, "application/pdf"),
    ).value
    return document.id


_SEQUENCE = itertools.count(1)


def _grade(services: Services, resident: str, grade: Grade, clock: MovableClock) -> None:
    services.residents.record_grades(
        [GradeUpdate(resident, grade, clock.now(), next(_SEQUENCE))]
    )


def _ready(services: Services) -> None:
    services.view_runner.catch_up()  # the library read model names the candidates


def _disability_applicant(services: Services, resident: str, clock: MovableClock) -> None:
    """A resident graded A with every material of disability-subsidy in the library, the
    disability certificate verified by the federation (the service needs it at trust B)."""
    for doc_type in ("id-card", "household-register", "income-proof"):
        _upload(services, resident, doc_type)
    certificate = _upload(services, resident, "disability-cert")
    services.documents.verify("disabled-persons", "officer-he", certificate)
    _grade(services, resident, Grade.A, clock)
    _ready(services)


def test_materials_come_from_the_library_under_consents_made_for_the_application(
    services: Services, clock: MovableClock
) -> None:
    card = _upload(services, "zhang-wei", "id-card")
    _grade(services, "zhang-wei", Grade.C, clock)  # C earns reuse for elderly-card
    _ready(services)
    accepted = services.applications.apply("zhang-wei", "elderly-card", form={"name": "张伟"})
    application = accepted.application
    assert application.status is ApplicationStatus.ACCEPTED
    assert application.tracks == ("reuse",)
    assert application.materials == [{"doc_type": "id-card", "source": "library",
                                      "document_id": str(card), "trust_level": "C",
                                      "due_at": None}]
    assert application.form == {"name": {"value": "张伟", "source": "resident"}}
    [consent] = accepted.consents
    assert (consent.department, consent.purpose, consent.doc_types) == (
        "civil-affairs", "elderly-card", ("id-card",)
    )
    assert application.consent_ids == (str(consent.id),)
    [receipt] = accepted.receipts
    terms = verify_consent_receipt(receipt, services.signing.public_keys("receipts"))
    assert (terms["sub"], terms["consentReceiptID"]) == ("zhang-wei", str(consent.id))
    assert accepted.position == services.events.head()
    # the reviewer reads the material under that consent: a recorded fetch, like any other
    read = services.fetches.fetch(
        officer="officer-li", department="civil-affairs", resident_id="zhang-wei",
        document_id=card, purpose="elderly-card",
    )
    assert b"".join(read.content) == b"zhang-wei id-card"


def test_without_reuse_or_with_too_little_trust_nothing_is_attached(
    services: Services, clock: MovableClock
) -> None:
    _upload(services, "li-na", "id-card")
    _ready(services)
    with pytest.raises(InvalidInput, match="no reuse track"):  # unrated: no tracks
        services.applications.apply("li-na", "elderly-card")
    _grade(services, "li-na", Grade.A, clock)
    with pytest.raises(InvalidInput, match=r"id-card \(trust level B or better\)"):
        services.applications.apply("li-na", "housing-subsidy")  # needs B; hers is C


def test_missing_materials_only_where_the_service_and_the_tracks_allow(
    services: Services, clock: MovableClock
) -> None:
    for doc_type in ("id-card", "household-register"):
        _upload(services, "chen-jie", doc_type)
    _ready(services)
    _grade(services, "chen-jie", Grade.C, clock)  # C: reuse only
    with pytest.raises(InvalidInput, match="missing-allowed"):
        services.applications.apply("chen-jie", "subsistence-allowance",
                                    missing=("income-proof",))
    _grade(services, "chen-jie", Grade.A, clock)
    _upload(services, "zhou-min", "household-register")  # no id-card in her library
    _grade(services, "zhou-min", Grade.A, clock)
    _ready(services)
    with pytest.raises(InvalidInput, match="key material"):
        services.applications.apply("zhou-min", "subsistence-allowance",
                                    missing=("income-proof", "id-card"))
    with pytest.raises(InvalidInput, match="no material of"):
        services.applications.apply("chen-jie", "subsistence-allowance", missing=("diploma",))
    accepted = services.applications.apply("chen-jie", "subsistence-allowance",
                                           missing=("income-proof",))
    income = accepted.application.materials[2]
    assert (income["source"], income["document_id"]) == ("missing", None)
    assert income["due_at"] > clock.now()


def test_a_material_accepted_as_missing_is_supplied_while_open_and_nothing_else_moves(
    services: Services, clock: MovableClock
) -> None:
    """容缺: the resident brings what was missing before anyone asks; the clock, the status
    and the queue stay as they were, and the material counts as brought."""
    for doc_type in ("id-card", "household-register"):
        _upload(services, "he-lan", doc_type)
    _grade(services, "he-lan", Grade.A, clock)
    _ready(services)
    accepted = services.applications.apply("he-lan", "subsistence-allowance",
                                           missing=("income-proof",))
    application = accepted.application
    assert application.still_missing == ("income-proof",)
    before = (application.status, application.due_at, application.waiting_on)
    with pytest.raises(ApplicationClosed, match="missing \\(income-proof\\)"):
        services.applications.supply("he-lan", application.id, "household-register",
                                     _upload(services, "he-lan", "household-register"))
    clock.advance(timedelta(hours=2))
    income = _upload(services, "he-lan", "income-proof")
    supplied = services.applications.supply("he-lan", application.id, "income-proof", income)
    after = supplied.value
    assert after.still_missing == ()
    assert (after.status, after.due_at, after.waiting_on) == before
    material = next(m for m in after.materials if m["doc_type"] == "income-proof")
    assert (material["source"], material["document_id"]) == ("supplement", str(income))
    with pytest.raises(ApplicationClosed):  # nothing is missing or asked for any more
        services.applications.supply("he-lan", application.id, "income-proof", income)
    services.view_runner.catch_up()
    [row] = services.views.applications("he-lan", limit=5)
    assert (row.status, row.due_at) == (before[0].value, before[1])
    # the reviewer reads it under the application's consent, as any other material
    found = services.applications.material(application.id, "civil-affairs", "income-proof")
    assert str(found.document_id) == str(income)


def test_a_commitment_replaces_a_missing_material_only_where_the_service_and_tracks_allow(
    services: Services, clock: MovableClock
) -> None:
    """告知承诺 after acceptance: the resident signs in place of what the application was
    accepted without (容缺), under the same rule as at acceptance — the service in force
    allows it for the material, the tracks it was accepted with include commitment."""
    for doc_type in ("id-card", "household-register"):
        _upload(services, "qin-hai", doc_type)
    _grade(services, "qin-hai", Grade.A, clock)
    _ready(services)
    apply = services.applications.apply
    employment = apply("qin-hai", "employment-subsidy",
                       missing=("diploma", "social-insurance-record")).application
    assert "commitment" in employment.tracks
    permit = apply("qin-hai", "residence-permit", missing=("birth-cert",)).application
    assert "commitment" not in permit.tracks  # A: missing-allowed, but no commitment here
    commit = services.applications.commit
    head = services.events.head()
    with pytest.raises(InvalidInput, match="social-insurance-record cannot be replaced"):
        commit("qin-hai", employment.id, "social-insurance-record")
    with pytest.raises(InvalidInput, match=r"\(commitment\) is not among"):
        commit("qin-hai", permit.id, "birth-cert")
    with pytest.raises(InvalidInput, match="id-card is not missing"):
        commit("qin-hai", employment.id, "id-card")
    with pytest.raises(InvalidInput):
        commit("qin-hai", employment.id, "no-such-type")
    with pytest.raises(ApplicationNotFound):
        commit("wu-tong", employment.id, "diploma")
    assert services.events.head() == head  # refused: nothing written
    before = (employment.status, employment.due_at, employment.waiting_on)
    clock.advance(timedelta(hours=1))
    committed = commit("qin-hai", employment.id, "diploma").value
    assert committed.still_missing == ("social-insurance-record",)
    diploma = next(m for m in committed.materials if m["doc_type"] == "diploma")
    assert (diploma["source"], diploma["trust_level"], diploma["document_id"],
            diploma["due_at"]) == ("commitment", "D", None, None)
    assert "毕业证书" in diploma["statement"]
    assert "承诺" in diploma["statement"]
    assert (committed.status, committed.due_at, committed.waiting_on) == before
    assert services.applications.committable(committed) == {}
    assert services.applications.committable(
        services.applications.application(permit.id)) == {}
    with pytest.raises(InvalidInput, match="diploma is not missing"):
        commit("qin-hai", employment.id, "diploma")
    services.applications.withdraw("qin-hai", permit.id)
    head = services.events.head()
    with pytest.raises(ApplicationClosed):
        commit("qin-hai", permit.id, "birth-cert")
    assert services.events.head() == head
    with pytest.raises(DocumentNotFound, match="commitment"):  # nothing to read
        services.applications.material(employment.id, "human-resources", "diploma")


def test_a_commitment_stands_in_only_where_the_service_and_the_tracks_allow(
    services: Services, clock: MovableClock
) -> None:
    _upload(services, "gao-yu", "household-register")  # neither id-card nor income proof
    _grade(services, "gao-yu", Grade.A, clock)
    _ready(services)
    apply = services.applications.apply
    with pytest.raises(InvalidInput, match="id-card cannot be replaced by a commitment"):
        apply("gao-yu", "subsistence-allowance", commitments=("id-card", "income-proof"))
    _upload(services, "gao-yu", "id-card")
    _grade(services, "gao-yu", Grade.B, clock)  # B: no commitment for subsistence-allowance
    _ready(services)
    head = services.events.head()
    with pytest.raises(InvalidInput, match=r"\(commitment\) is not among"):
        apply("gao-yu", "subsistence-allowance", commitments=("income-proof",))
    with pytest.raises(InvalidInput, match="not both"):
        apply("gao-yu", "subsistence-allowance", missing=("income-proof",),
              commitments=("income-proof",))
    with pytest.raises(InvalidInput, match="no material of"):
        apply("gao-yu", "subsistence-allowance", commitments=("diploma",))
    assert services.events.head() == head  # refused: nothing written
    _grade(services, "gao-yu", Grade.A, clock)
    accepted = apply("gao-yu", "subsistence-allowance", commitments=("income-proof",))
    income = accepted.application.materials[2]
    assert (income["source"], income["trust_level"], income["document_id"]) == (
        "commitment", "D", None)
    assert "收入证明" in income["statement"]
    assert "承诺" in income["statement"]
    with pytest.raises(DocumentNotFound, match="commitment"):  # nothing to read
        services.applications.material(accepted.application.id, "civil-affairs",
                                       "income-proof")


def test_the_form_is_filled_from_the_attached_documents_then_earlier_applications(
    services: Services, clock: MovableClock
) -> None:
    """反填: each value says where it came from; one typed over a filled-in one keeps it."""
    card = services.documents.issue(
        "public-security", "officer-zhao", "qian-li", io.BytesIO(b"card"),
        DocumentDetails("id-card", "居民身份证", "application/pdf",
                        attributes={"name": "钱丽", "number": "110101195001011234"}),
    ).value
    with pytest.raises(InvalidInput, match="no attribute of id-card"):
        DocumentDetails("id-card", "居民身份证", attributes={"shoe_size": "42"})
    for doc_type in ("household-register", "income-proof"):
        _upload(services, "qian-li", doc_type)  # they say nothing
    _grade(services, "qian-li", Grade.A, clock)
    _ready(services)
    first = services.applications.apply(
        "qian-li", "subsistence-allowance", form={"monthly_income": "1800", "name": "钱莉"},
    ).application
    assert first.form["id_number"] == {"value": "110101195001011234",
                                       "source": "id-card.number",
                                       "document_id": str(card.id)}
    assert first.form["name"] == {"value": "钱莉", "source": "resident",
                                  "replaced_value": "钱丽", "replaced_source": "id-card.name"}
    assert first.form["monthly_income"] == {"value": "1800", "source": "resident"}
    assert "address" not in first.form  # nothing says it
    _ready(services)
    second = services.applications.apply("qian-li", "temporary-assistance").application
    assert second.form["monthly_income"] == {"value": "1800",
                                             "source": f"application:{first.number}"}
    assert second.form["name"]["source"] == "id-card.name"


def test_a_reviewer_reads_a_material_only_under_the_applications_own_consent(
    services: Services, clock: MovableClock
) -> None:
    """Another consent of the resident's to the same department for the same service does
    not stand in: once the application's own is revoked, its materials cannot be read."""
    _disability_applicant(services, "sun-yu", clock)
    application = services.applications.apply("sun-yu", "disability-subsidy").application
    other = services.consents.grant("sun-yu", ConsentRequest(
        "civil-affairs", ("id-card",), "disability-subsidy",
        valid_until=clock.now() + timedelta(days=30),
    )).consent
    material = services.applications.material(application.id, "civil-affairs", "id-card")
    assert material.consent_id == application.consent_of("civil-affairs") != other.id

    def read() -> Any:
        return services.fetches.submit(
            officer="officer-li", department="civil-affairs", resident_id="sun-yu",
            document_id=material.document_id, purpose=material.purpose,
            consent_id=material.consent_id,
        ).result()

    assert read().access.consent_id == material.consent_id
    services.consents.revoke("sun-yu", material.consent_id)
    with pytest.raises(AccessDenied) as denied:
        read()
    assert denied.value.reason_codes == ("consent-revoked",)
    # A fetch outside the application is judged on every consent, and the other one allows it.
    plain = services.fetches.fetch(
        officer="officer-li", department="civil-affairs", resident_id="sun-yu",
        document_id=material.document_id, purpose="disability-subsidy",
    )
    assert plain.access.consent_id == other.id


def test_steps_are_decided_in_order_and_the_approval_issues_the_result(
    services: Services, clock: MovableClock
) -> None:
    _disability_applicant(services, "wang-fang", clock)
    application = services.applications.apply("wang-fang", "disability-subsidy").application
    apps = services.applications
    with pytest.raises(StepMoved):
        apps.decide(application.id, department="civil-affairs", officer="officer-li",
                    decision="approve", reason="ok")
    with pytest.raises(NotAReviewer):
        apps.decide(application.id, department="tax", officer="officer-qian",
                    decision="approve", reason="ok")
    returned = apps.decide(application.id, department="disabled-persons", officer="officer-he",
                           decision="return", reason="收入证明已过期", asked_for=("income-proof",))
    assert returned.value.status is ApplicationStatus.RETURNED
    with pytest.raises(InvalidInput, match="no material of"):
        apps.decide(application.id, department="disabled-persons", officer="officer-he",
                    decision="return", reason="?", asked_for=("diploma",))
    clock.advance(timedelta(days=1))
    fresh = _upload(services, "wang-fang", "income-proof")
    with pytest.raises(ApplicationNotFound):  # another resident cannot touch it
        apps.supply("li-na", application.id, "income-proof", fresh)
    with pytest.raises(InvalidInput, match="is a household-register"):
        apps.supply("wang-fang", application.id, "income-proof",
                    _upload(services, "wang-fang", "household-register"))
    supplied = apps.supply("wang-fang", application.id, "income-proof", fresh).value
    assert supplied.status is ApplicationStatus.IN_REVIEW
    assert supplied.pauses[-1][1] is not None
    apps.decide(application.id, department="disabled-persons", officer="officer-he",
                decision="approve", reason="ok")
    approved = apps.decide(application.id, department="civil-affairs", officer="officer-li",
                           decision="approve", reason="符合条件").value
    assert approved.status is ApplicationStatus.APPROVED
    assert approved.result_document_id is not None
    issued = services.documents.document("wang-fang", approved.result_document_id)
    assert (issued.doc_type, issued.trust_level, issued.issuer) == (
        "subsidy-approval", TrustLevel.A, "civil-affairs"
    )
    rated = apps.rate("wang-fang", application.id, 5, "很方便").value
    assert rated.rating is not None


def test_a_supplied_material_needs_the_services_trust_level(
    services: Services, clock: MovableClock
) -> None:
    _disability_applicant(services, "he-ping", clock)
    apps = services.applications
    application = apps.apply("he-ping", "disability-subsidy").application
    apps.decide(application.id, department="disabled-persons", officer="officer-he",
                decision="return", reason="证件不清晰", asked_for=("disability-cert",))
    unverified = _upload(services, "he-ping", "disability-cert")  # trust C; B is needed
    with pytest.raises(InvalidInput, match="needs B or better"):
        apps.supply("he-ping", application.id, "disability-cert", unverified)
    services.documents.verify("disabled-persons", "officer-he", unverified)
    assert apps.supply("he-ping", application.id, "disability-cert", unverified).value.status \
        is ApplicationStatus.IN_REVIEW


def test_departments_reviewing_side_by_side_both_approve_before_the_result_is_issued(
    services: Services, clock: MovableClock
) -> None:
    in_order = '  { departments = ["disabled-persons"] },\n  { departments = ["civil-affairs"] },'
    side_by_side = shipped_catalogue_text().replace(
        in_order, '  { departments = ["disabled-persons", "civil-affairs"] },'
    )
    assert side_by_side != shipped_catalogue_text()
    services.catalogues.publish(side_by_side)
    _disability_applicant(services, "lin-yu", clock)
    apps = services.applications
    application = apps.apply("lin-yu", "disability-subsidy").application
    first = apps.decide(application.id, department="civil-affairs", officer="officer-li",
                        decision="approve", reason="ok").value
    assert (first.status, first.result_document_id) == (ApplicationStatus.IN_REVIEW, None)
    last = apps.decide(application.id, department="disabled-persons", officer="officer-he",
                       decision="approve", reason="ok").value
    assert last.status is ApplicationStatus.APPROVED
    assert last.result_document_id is not None


def test_two_reviewers_deciding_one_step_at_once_one_wins(
    services: Services, clock: MovableClock
) -> None:
    _upload(services, "zhao-lei", "id-card")
    _grade(services, "zhao-lei", Grade.B, clock)
    _ready(services)
    application = services.applications.apply("zhao-lei", "elderly-card").application
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(officer: str, decision: str) -> None:
        barrier.wait()
        try:
            services.applications.decide(application.id, department="civil-affairs",
                                         officer=officer, decision=decision,  # type: ignore[arg-type]
                                         reason="审核")
            outcomes.append(decision)
        except (StepMoved, ApplicationClosed):
            outcomes.append("409")

    threads = [threading.Thread(target=decide, args=a)
               for a in (("officer-li", "reject"), ("officer-wu", "approve"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) in (["409", "reject"], ["409", "approve"])
    decided = services.applications.application(application.id)
    _ready(services)
    issued = [d for d in services.views.library("zhao-lei", limit=10, everything=True)
              if d.doc_type == "elderly-card"]
    if "approve" in outcomes:
        assert decided.status is ApplicationStatus.APPROVED
        assert [d.status.value for d in issued] == ["active"]
    else:  # the approval lost: its notice and its decision were one save, so neither
        assert decided.status is ApplicationStatus.REJECTED
        assert issued == []


def test_a_window_accepts_with_the_residents_code_what_is_delegated_to_its_level(
    services: Services, clock: MovableClock
) -> None:
    for doc_type in ("id-card", "household-register", "income-proof"):
        _upload(services, "sun-li", doc_type)
    _grade(services, "sun-li", Grade.C, clock)
    _ready(services)
    apps = services.applications
    made = apps.authorization_code("sun-li", "subsistence-allowance")
    assert len(made.code) == 8
    assert made.expires_at == clock.now() + timedelta(minutes=10)
    with pytest.raises(ServiceNotAcceptedHere):  # a district: streets and communities accept it
        apps.apply("sun-li", "subsistence-allowance", unit="dongcheng", clerk="clerk-wang",
                   authorization_code=made.code)
    with pytest.raises(InvalidInput, match="authorization code"):
        apps.apply("sun-li", "subsistence-allowance", unit="anle", clerk="clerk-wang")
    accepted = apps.apply("sun-li", "subsistence-allowance", unit="anle", clerk="clerk-wang",
                          authorization_code=made.code.lower()).application
    assert (accepted.channel, accepted.unit, accepted.clerk) == ("window", "anle", "clerk-wang")
    with pytest.raises(CodeRefused):  # one use
        apps.apply("sun-li", "subsistence-allowance", unit="anle", clerk="clerk-wang",
                   authorization_code=made.code)
    withdrawn = apps.withdraw("sun-li", accepted.id).value
    assert withdrawn.status is ApplicationStatus.WITHDRAWN


@pytest.mark.parametrize("case", ["wrong", "other service", "other resident", "expired"])
def test_without_a_valid_code_the_clerk_learns_nothing_and_nothing_is_written(
    services: Services, clock: MovableClock, case: str
) -> None:
    _upload(services, "zhou-min", "id-card")  # her library lacks what the service needs
    _upload(services, "qian-bo", "id-card")
    apps = services.applications
    code = apps.authorization_code(
        "zhou-min", "elderly-card" if case == "other service" else "subsistence-allowance"
    ).code
    if case == "expired":
        clock.advance(timedelta(minutes=10))
    resident = "qian-bo" if case == "other resident" else "zhou-min"
    services.policies.current_version()  # the shipped policy is published on first need
    head = services.events.head()
    with pytest.raises(CodeRefused):
        apps.apply(resident, "subsistence-allowance", unit="anle", clerk="clerk-wang",
                   authorization_code="ABCDEFGH" if case == "wrong" else code)
    assert services.events.head() == head


def _at(clock: MovableClock, moment: datetime) -> None:
    clock.advance(moment - clock.now())


def test_the_clock_of_an_application_in_working_days_stops_while_the_resident_is_asked(
    services: Services, clock: MovableClock
) -> None:
    """Accepted on Monday 2 March 2026 with 3 working days: due at the end of Thursday 5
    March (CST). Returned on Tuesday (its first day, which counts) and supplied the next
    Monday: Wednesday to Monday do not count, so it is due at the end of Wednesday 11."""
    _at(clock, datetime(2026, 3, 2, 2, tzinfo=UTC))  # 10:00 in Beijing
    _upload(services, "guo-mei", "id-card")
    _grade(services, "guo-mei", Grade.C, clock)
    _ready(services)
    apps = services.applications
    application = apps.apply("guo-mei", "elderly-card").application
    timing = apps.timing(application)
    assert timing.due_at == datetime(2026, 3, 5, 16, tzinfo=UTC) - timedelta(microseconds=1)
    assert (timing.clock, timing.on_time, timing.estimate) == ("on-time", None, False)
    _at(clock, datetime(2026, 3, 3, 2, tzinfo=UTC))
    returned = apps.decide(application.id, department="civil-affairs", officer="officer-li",
                           decision="return", reason="照片不清", asked_for=("id-card",)).value
    assert (apps.timing(returned).clock, apps.timing(returned).due_at) == ("paused", None)
    _at(clock, datetime(2026, 3, 9, 2, tzinfo=UTC))  # Monday
    fresh = _upload(services, "guo-mei", "id-card")
    supplied = apps.supply("guo-mei", application.id, "id-card", fresh).value
    moved = apps.timing(supplied)
    assert moved.due_at == datetime(2026, 3, 11, 16, tzinfo=UTC) - timedelta(microseconds=1)
    assert moved.clock == "on-time"  # 1 of its 3 working days used
    _at(clock, datetime(2026, 3, 11, 2, tzinfo=UTC))
    assert apps.timing(supplied).clock == "warning"  # its last day
    _at(clock, datetime(2026, 3, 12, 2, tzinfo=UTC))
    assert apps.timing(supplied).clock == "overdue"
    decided = apps.decide(application.id, department="civil-affairs", officer="officer-li",
                          decision="reject", reason="不符合条件").value
    assert (apps.timing(decided).clock, apps.timing(decided).on_time) == (None, False)


def test_a_due_date_in_a_year_the_calendar_does_not_know_is_an_estimate(
    services: Services, clock: MovableClock
) -> None:
    """3 working days from Wednesday 30 December 2026: Thursday 31, then 2027, which the
    package does not know and the holiday file does not hold yet: Monday to Friday."""
    _at(clock, datetime(2026, 12, 30, 2, tzinfo=UTC))
    _upload(services, "ma-lan", "id-card")
    _grade(services, "ma-lan", Grade.C, clock)
    _ready(services)
    application = services.applications.apply("ma-lan", "elderly-card").application
    timing = services.applications.timing(application)
    assert timing.due_at == datetime(2027, 1, 4, 16, tzinfo=UTC) - timedelta(microseconds=1)
    assert timing.estimate


def test_readjudication_finds_honest_acceptances_right_and_forged_ones_wrong(
    services: Services, clock: MovableClock
) -> None:
    """Were the tracks and the attached materials right under the policy, the catalogue and
    the library of their time? For every acceptance the service made, yes; for one written
    around it, each thing it got wrong is named."""
    _disability_applicant(services, "wang-fang", clock)
    services.applications.apply("wang-fang", "disability-subsidy")
    card = _upload(services, "li-na", "id-card")
    _grade(services, "li-na", Grade.C, clock)  # C: reuse only
    _ready(services)
    services.applications.apply("li-na", "elderly-card")
    honest = services.audit.readjudicate()
    assert (honest.acceptances, honest.acceptance_mismatches) == (2, [])

    catalogue = services.catalogues.current()
    point = services.policies.decision_point()
    forged = Application(
        resident_id="li-na", service_id="subsistence-allowance", department="civil-affairs",
        channel="online", unit=None, clerk=None,
        tracks=["reuse", "missing-allowed"],  # a C earns reuse alone
        consent_ids=[], form={}, steps=[["civil-affairs"]], time_limit_days=20,
        materials=[
            {"doc_type": "id-card", "source": "library", "document_id": str(card),
             "trust_level": "C", "due_at": None},
            {"doc_type": "household-register", "source": "missing", "document_id": None,
             "trust_level": None, "due_at": None},  # a key material
            {"doc_type": "income-proof", "source": "library", "document_id": str(uuid4()),
             "trust_level": "C", "due_at": None},  # no such document
        ],
        accepted_at=clock.now(), due_at=clock.now(), catalogue_version=catalogue.version,
        policy_version=point.version, timestamp=clock.now(),
    )
    services.store.save(forged)
    [mismatch] = services.audit.readjudicate().acceptance_mismatches
    assert mismatch.application_id == forged.id
    assert mismatch.problems == ("tracks", "missing:household-register", "library:income-proof")
