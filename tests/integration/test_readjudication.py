"""Re-adjudication on real stores: a forged "allowed" access is flagged, an honest history
gives none, the window bounds what is checked, and erased residents are unverifiable."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from adapters.wiring import Services
from policy.decision import Decision, Reason
from policy.scales import Grade
from tests.support import MovableClock
from vault.access import AccessAttempt
from vault.attestation import ISSUE, VERIFY, AttestationAttempt, AttestationJudgement
from vault.errors import AccessDenied, InvalidInput
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate

ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证", content_type="image/png")
CIVIL = {"officer": "officer-li", "department": "civil-affairs", "purpose": "subsistence-allowance"}


def _fetch(services: Services, resident: str, document_id: UUID) -> bool:
    try:
        b"".join(services.fetches.fetch(
            resident_id=resident, document_id=document_id, **CIVIL
        ).content)
    except AccessDenied:
        return False
    return True


def _history(services: Services, clock: MovableClock) -> dict[str, UUID]:
    """Two residents: r1 consents once and is graded down; r2 never consents."""
    documents = {
        r: services.documents.submit(r, [r.encode()], ID_CARD).value.id for r in ("r1", "r2")
    }
    services.consents.grant(
        "r1",
        ConsentRequest(
            department="civil-affairs",
            doc_types=("id-card",),
            purpose="subsistence-allowance",
            valid_until=clock.now() + timedelta(days=30),
            max_uses=2,
        ),
    )
    assert _fetch(services, "r1", documents["r1"])
    assert not _fetch(services, "r2", documents["r2"])  # no consent
    clock.advance(timedelta(hours=1))
    services.residents.record_grades([GradeUpdate("r1", Grade.D, clock.now(), 1)])
    assert not _fetch(services, "r1", documents["r1"])  # grade D is below C
    services.residents.record_grades([GradeUpdate("r1", Grade.B, clock.now(), 2)])
    assert _fetch(services, "r1", documents["r1"])
    assert not _fetch(services, "r1", documents["r1"])  # both uses spent
    return documents


def test_an_honest_history_has_no_mismatch(services: Services, clock: MovableClock) -> None:
    _history(services, clock)
    seen: list[tuple[int, int]] = []
    report = services.audit.readjudicate(progress=lambda done, total: seen.append((done, total)))
    assert (report.checked, report.unverifiable, report.mismatches) == (5, 0, [])
    head = services.events.head()
    assert report.events == head
    assert seen[-1] == (head, head)


def test_a_forged_allowed_access_is_flagged(services: Services, clock: MovableClock) -> None:
    documents = _history(services, clock)
    forged = AccessAttempt.record(
        resident_id="r2", document_id=documents["r2"], doc_type="id-card", consent_id=uuid4(),
        grade="unrated", trust_level="C", allowed=True, reason_codes=[], reasons=[],
        policy_version=services.policies.current_version(), rule=None, request_id="forged",
        at=clock.now(), **CIVIL,
    )
    services.store.save(forged)
    report = services.audit.readjudicate()
    assert report.checked == 6
    [mismatch] = report.mismatches
    assert mismatch.access_id == forged.id
    assert mismatch.event == services.events.head()
    assert (mismatch.recorded_allowed, mismatch.decided_allowed) == (True, False)
    assert mismatch.decided_reasons == ("no-consent",)


def _judged(services: Services, *, allowed: bool) -> AttestationJudgement:
    """A judgement no decision point made: allowed, or refused for want of a rule."""
    version = services.policies.current_version()
    reasons = () if allowed else (Reason("no-rule", "no rule allows it"),)
    return AttestationJudgement(reasons, Decision(allowed, reasons, None, version), version)


def test_a_forged_allowed_verification_is_flagged(
    services: Services, clock: MovableClock
) -> None:
    """Education may verify diplomas, not id-cards: a recorded "allowed" says otherwise."""
    documents = _history(services, clock)
    forged = AttestationAttempt.record(
        _judged(services, allowed=True), resident_id="r2", officer="officer-wu",
        department="education", act=VERIFY, document_id=documents["r2"], doc_type="id-card",
        request_id="forged", at=clock.now(),
    )
    services.store.save(forged)
    report = services.audit.readjudicate()
    assert report.checked == 6
    [mismatch] = report.mismatches
    assert (mismatch.access_id, mismatch.event) == (forged.id, services.events.head())
    assert (mismatch.recorded_allowed, mismatch.decided_allowed) == (True, False)
    assert mismatch.decided_reasons == ("no-rule",)


def test_a_forged_refused_issue_is_flagged(services: Services, clock: MovableClock) -> None:
    """Public security issues id-cards: a recorded refusal of one is not what the policy says."""
    _history(services, clock)
    forged = AttestationAttempt.record(
        _judged(services, allowed=False), resident_id="r2", officer="officer-zhao",
        department="public-security", act=ISSUE, document_id=uuid4(), doc_type="id-card",
        request_id="forged", at=clock.now(),
    )
    services.store.save(forged)
    [mismatch] = services.audit.readjudicate().mismatches
    assert (mismatch.recorded_allowed, mismatch.decided_allowed) == (False, True)
    assert (mismatch.recorded_reasons, mismatch.decided_reasons) == (("no-rule",), ())


def test_a_forged_policy_version_is_flagged(services: Services, clock: MovableClock) -> None:
    documents = _history(services, clock)
    services.store.save(AccessAttempt.record(
        resident_id="r2", document_id=documents["r2"], doc_type="id-card", consent_id=None,
        grade="unrated", trust_level="C", allowed=False, reason_codes=["no-consent"],
        reasons=["none"], policy_version="0" * 64, rule=None, request_id="forged",
        at=clock.now(), **CIVIL,
    ))
    [mismatch] = services.audit.readjudicate().mismatches
    assert mismatch.decided_reasons == ("unknown-policy-version",)


def test_the_window_bounds_what_is_checked(services: Services, clock: MovableClock) -> None:
    start = clock.now()
    _history(services, clock)
    later = start + timedelta(minutes=30)  # the grade pushes and the last three fetches
    assert services.audit.readjudicate(since=later).checked == 3
    assert services.audit.readjudicate(until=later).checked == 2
    assert services.audit.readjudicate(since=later, until=later).checked == 0
    with pytest.raises(InvalidInput, match="time zone"):
        services.audit.readjudicate(since=later.replace(tzinfo=None))


def test_an_erased_residents_accesses_are_unverifiable(
    services: Services, clock: MovableClock
) -> None:
    _history(services, clock)
    services.residents.erase("r1")
    report = services.audit.readjudicate()
    assert (report.checked, report.unverifiable, report.mismatches) == (5, 4, [])
