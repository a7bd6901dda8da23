"""Department fetches: every reason a fetch can be denied, each recorded as one access event."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.utils import get_topic

from adapters.wiring import Core
from keys.errors import ResidentKeyShredded
from policy.scales import Grade, TrustLevel
from tests.support import MovableClock, fetchable_documents, memory_vault
from vault.access import ACCESS_TOPIC, AccessAttempt
from vault.consent import USED_TOPIC
from vault.document import REUSED_TOPIC
from vault.errors import (
    AccessDenied,
    InvalidInput,
    InvalidPolicy,
    NoConsent,
    ResidentErased,
    ServiceNotHandled,
)
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate
from vault.services.fetches import RecordedFetch

ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证")
CIVIL = {"department": "civil-affairs", "purpose": "subsistence-allowance"}


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))


@pytest.fixture
def vault(clock: MovableClock) -> Core:
    return memory_vault(clock)


def _grant(vault: Core, clock: MovableClock, resident: str = "r1", **overrides: Any) -> Any:
    terms: dict[str, Any] = {
        "department": "civil-affairs",
        "doc_types": ("id-card",),
        "purpose": "subsistence-allowance",
        "valid_until": clock.now() + timedelta(days=30),
    }
    terms.update(overrides)
    return vault.consents.grant(resident, ConsentRequest(**terms)).consent


def _fetch(vault: Core, document_id: Any, resident: str = "r1", **overrides: str) -> Any:
    args = {"officer": "officer-li", "resident_id": resident, "document_id": document_id, **CIVIL}
    args.update(overrides)
    return vault.fetches.fetch(**args)


def _accesses(vault: Core) -> list[AccessAttempt]:
    topic = ACCESS_TOPIC
    assert topic == get_topic(AccessAttempt.Recorded)
    notifications = vault.events.select_notifications(1, 10_000, topics=[topic])
    return [vault.application.repository.get(n.originator_id) for n in notifications]


def _denied(vault: Core, document_id: Any, **overrides: str) -> AccessDenied:
    """The denial the officer gets; exactly one access event was recorded for it."""
    before = len(_accesses(vault))
    with pytest.raises(AccessDenied) as denied:
        _fetch(vault, document_id, **overrides)
    accesses = _accesses(vault)
    assert len(accesses) == before + 1, "a denied fetch records exactly one access event"
    assert not accesses[-1].allowed
    assert accesses[-1].id == denied.value.access_id
    return denied.value


def _denied_for(vault: Core, document_id: Any, **overrides: str) -> tuple[str, ...]:
    """Every reason the denial was recorded with (what the resident and auditors see)."""
    _denied(vault, document_id, **overrides)
    return _accesses(vault)[-1].reason_codes


def test_allowed_fetch_streams_the_bytes_and_records_the_access(
    vault: Core, clock: MovableClock
) -> None:
    document = vault.documents.submit("r1", [b"card bytes"], ID_CARD).value
    consent = _grant(vault, clock)
    fetched = _fetch(vault, document.id, request_id="req-1")
    [access] = _accesses(vault)
    assert access.allowed
    assert (access.officer, access.department, access.purpose) == ("officer-li", *CIVIL.values())
    assert (access.document_id, access.doc_type, access.consent_id) == (
        document.id, "id-card", consent.id
    )
    assert (access.grade, access.trust_level, access.request_id) == ("unrated", "C", "req-1")
    assert access.rule == "p, caseworker, civil-affairs, id-card, subsistence-allowance, C, C"
    assert access.policy_version == vault.policies.current_version()
    assert b"".join(fetched.content) == b"card bytes"
    assert vault.consents.consent("r1", consent.id).uses == 1
    assert vault.documents.document("r1", document.id).reuse_count == 1


def test_the_access_event_is_committed_before_any_byte(vault: Core, clock: MovableClock) -> None:
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    _grant(vault, clock)
    fetched = _fetch(vault, document.id)
    assert len(_accesses(vault)) == 1  # the content iterator has not been read yet
    assert b"".join(fetched.content) == b"card"


def test_unknown_resident_is_denied(vault: Core) -> None:
    assert _denied_for(vault, "00000000-0000-0000-0000-000000000001", resident_id="nobody") == (
        "resident-not-found", "document-not-found"
    )


def test_to_an_officer_an_unknown_resident_looks_like_one_who_consented_to_nothing(
    vault: Core, clock: MovableClock
) -> None:
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    _grant(vault, clock, department="housing", purpose="housing-subsidy")  # not to civil-affairs
    vault.residents.erase("r1")
    vault.documents.submit("r2", [b"card"], ID_CARD)
    told = [
        _denied(vault, document_id, resident_id=resident)
        for resident, document_id in (
            ("nobody", "00000000-0000-0000-0000-000000000001"),  # unknown
            ("r2", "00000000-0000-0000-0000-000000000001"),  # registered, no consent
            ("r2", document.id),  # another resident's document
            ("r1", document.id),  # erased
        )
    ]
    assert {(d.reason_codes, d.reasons) for d in told} == {
        (
            ("no-consent",),
            ("no consent from the resident lets civil-affairs fetch documents for "
             "subsistence-allowance",),
        )
    }


def test_erased_resident_is_denied(vault: Core, clock: MovableClock) -> None:
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    _grant(vault, clock)
    vault.residents.erase("r1")
    codes = _denied_for(vault, document.id)
    assert codes[0] == "resident-erased"
    assert "no-consent" in codes
    assert _denied(vault, document.id).reason_codes == ("no-consent",)


def test_another_residents_document_is_not_found(vault: Core, clock: MovableClock) -> None:
    theirs = vault.documents.submit("r2", [b"card"], ID_CARD).value
    _grant(vault, clock)
    assert _denied_for(vault, theirs.id) == ("document-not-found",)


@pytest.mark.parametrize("how", ["withdrawn", "revoked", "superseded"])
def test_an_unavailable_document_is_denied(vault: Core, clock: MovableClock, how: str) -> None:
    if how == "revoked":
        document = vault.documents.issue("public-security", "o1", "r1", [b"card"], ID_CARD).value
        vault.documents.revoke("public-security", document.id, "cancelled at source")
    else:
        document = vault.documents.submit("r1", [b"card"], ID_CARD).value
        if how == "withdrawn":
            vault.documents.withdraw("r1", document.id)
        else:
            vault.documents.submit("r1", [b"newer"], ID_CARD, replaces=document.id)
    _grant(vault, clock)
    assert _denied_for(vault, document.id) == (f"document-{how}",)


def test_an_expired_document_is_denied(vault: Core, clock: MovableClock) -> None:
    details = DocumentDetails("id-card", "居民身份证", expires_at=clock.now() + timedelta(days=1))
    document = vault.documents.submit("r1", [b"card"], details).value
    _grant(vault, clock, valid_until=clock.now() + timedelta(days=30))
    clock.advance(timedelta(days=2))
    assert _denied_for(vault, document.id) == ("document-expired",)


def test_without_consent_the_fetch_is_denied(vault: Core) -> None:
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    assert _denied_for(vault, document.id) == ("no-consent",)


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("revoke", "consent-revoked"),
        ("expire", "consent-expired"),
        ("future", "consent-not-yet-valid"),
        ("use-up", "consent-used-up"),
    ],
)
def test_a_consent_that_no_longer_allows_is_named(
    vault: Core, clock: MovableClock, setup: str, code: str
) -> None:
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    if setup == "future":
        _grant(vault, clock, valid_from=clock.now() + timedelta(days=1))
    else:
        consent = _grant(vault, clock, max_uses=1)
        if setup == "revoke":
            vault.consents.revoke("r1", consent.id)
        elif setup == "expire":
            clock.advance(timedelta(days=31))
        else:
            _fetch(vault, document.id)
    assert _denied_for(vault, document.id) == (code,)


@pytest.mark.parametrize("setup", ["revoke", "expire", "future", "use-up"])
def test_without_a_live_consent_the_officer_is_told_only_the_consent_reason(
    vault: Core, clock: MovableClock, setup: str
) -> None:
    """A department whose consent is over learns nothing of the resident's grade from a
    denial: it would otherwise watch the grade change without the resident's consent."""
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    if setup == "future":
        _grant(vault, clock, valid_from=clock.now() + timedelta(days=1))
    else:
        consent = _grant(vault, clock, max_uses=1)
        if setup == "use-up":
            _fetch(vault, document.id)
    vault.residents.record_grades([GradeUpdate("r1", Grade.D, clock.now(), 1)])
    if setup == "revoke":
        vault.consents.revoke("r1", consent.id)
    elif setup == "expire":
        clock.advance(timedelta(days=31))
    told = _denied(vault, document.id)
    [code] = told.reason_codes
    assert code.startswith("consent-")
    assert "grade" not in " ".join(told.reasons)
    # The resident and auditors see every reason.
    assert _accesses(vault)[-1].reason_codes == (code, "grade-too-low")
    vault.residents.record_grades([GradeUpdate("r1", Grade.B, clock.now(), 2)])
    assert _denied(vault, document.id).reason_codes == (code,)


def test_a_consent_for_another_department_or_purpose_does_not_count(
    vault: Core, clock: MovableClock
) -> None:
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    _grant(vault, clock, department="housing", purpose="housing-subsidy")
    assert _denied_for(vault, document.id) == ("no-consent",)


def test_no_rule_for_the_department_document_or_purpose(vault: Core, clock: MovableClock) -> None:
    diploma = DocumentDetails("diploma", "毕业证书")
    document = vault.documents.submit("r1", [b"diploma"], diploma).value
    _grant(vault, clock, doc_types=("diploma",))
    assert _denied_for(vault, document.id) == ("no-rule",)


def test_an_officer_without_a_role_is_denied(vault: Core, clock: MovableClock) -> None:
    policy = (
        "g, li-ming, caseworker, civil-affairs\n"
        "p, caseworker, civil-affairs, id-card, subsistence-allowance, C, C\n"
    )
    vault.policies.publish(policy)
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    _grant(vault, clock)
    assert _denied_for(vault, document.id, officer="wang-fang") == ("no-role",)
    assert b"".join(_fetch(vault, document.id, officer="li-ming").content) == b"card"


def test_grade_and_trust_below_the_rule_are_both_named(vault: Core, clock: MovableClock) -> None:
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    _grant(vault, clock, department="housing", purpose="housing-subsidy")
    vault.residents.record_grades([GradeUpdate("r1", Grade.C, clock.now(), 1)])
    codes = _denied_for(
        vault, document.id, department="housing", purpose="housing-subsidy"
    )
    assert codes == ("grade-too-low", "trust-too-low")
    [*_, access] = _accesses(vault)
    assert access.reasons == (
        "credit grade C is below the B housing-subsidy requires",
        "document trust level C is below the B housing-subsidy requires",
    )
    # The officer is told the requirement, never the resident's grade (personal data).
    told = _denied(vault, document.id, department="housing", purpose="housing-subsidy")
    assert told.reason_codes == ("grade-too-low", "trust-too-low")
    assert told.reasons == (
        "housing-subsidy requires credit grade B or better",
        "document trust level C is below the B housing-subsidy requires",
    )


def test_verification_and_a_better_grade_turn_the_denial_into_an_allow(
    vault: Core, clock: MovableClock
) -> None:
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    _grant(vault, clock, department="housing", purpose="housing-subsidy")
    vault.documents.verify("housing", "o2", document.id)
    vault.residents.record_grades([GradeUpdate("r1", Grade.B, clock.now(), 1)])
    fetched = _fetch(vault, document.id, department="housing", purpose="housing-subsidy")
    assert fetched.access.allowed


def test_unrated_residents_are_judged_as_grade_c(vault: Core, clock: MovableClock) -> None:
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    _grant(vault, clock)
    assert _fetch(vault, document.id).access.grade == "unrated"


def test_bad_input_is_refused_without_an_access_event(vault: Core) -> None:
    for overrides in ({"department": "Civil Affairs"}, {"purpose": ""}, {"officer": " "}):
        with pytest.raises(InvalidInput):
            _fetch(vault, "00000000-0000-0000-0000-000000000001", **overrides)
    with pytest.raises(InvalidInput):
        _fetch(vault, "not-an-id")
    assert _accesses(vault) == []


def test_fetchable_documents_lists_only_what_may_be_fetched(
    vault: Core, clock: MovableClock
) -> None:
    card = vault.documents.submit("r1", [b"card"], ID_CARD).value
    vault.documents.submit("r1", [b"diploma"], DocumentDetails("diploma", "毕业证书"))
    income_proof = DocumentDetails("income-proof", "收入证明")
    income = vault.documents.submit("r1", [b"income"], income_proof).value
    _grant(vault, clock, doc_types=("id-card", "diploma"))
    listed = fetchable_documents(vault, officer="officer-li", resident_id="r1", **CIVIL)
    assert [d.id for d in listed] == [card.id]
    assert income.id not in [d.id for d in listed]
    assert _accesses(vault) == []


# Fast-track tracks


PERMIT = {"department": "public-security", "purpose": "residence-permit"}


def _tracks(vault: Core, resident: str = "r1", department: str = "public-security") -> Any:
    return vault.policies.tracks_for(resident, "residence-permit", department=department)


def test_tracks_follow_the_grade_at_once(vault: Core, clock: MovableClock) -> None:
    _grant(vault, clock, **PERMIT)
    assert _tracks(vault).tracks == ()
    vault.residents.record_grades([GradeUpdate("r1", Grade.A, clock.now(), 1)])
    assert _tracks(vault).tracks == ("reuse", "missing-allowed", "priority")
    vault.residents.record_grades([GradeUpdate("r1", Grade.C, clock.now(), 2)])
    assert _tracks(vault).tracks == ("reuse",)
    vault.residents.record_grades([GradeUpdate("r1", Grade.D, clock.now(), 3)])
    decision = _tracks(vault)
    assert decision.tracks == ()
    # The department is told the requirement, never the resident's grade.
    assert decision.reasons[0].text == "reuse: needs grade C or better: not met"
    assert not any("D" in r.text for r in decision.reasons)


def test_tracks_for_an_erased_resident_are_refused_as_for_no_consent(
    vault: Core, clock: MovableClock
) -> None:
    _grant(vault, clock, **PERMIT)
    vault.residents.erase("r1")
    with pytest.raises(NoConsent):
        _tracks(vault)


def test_tracks_go_only_to_a_department_that_handles_the_service_with_live_consent(
    vault: Core, clock: MovableClock
) -> None:
    vault.residents.record_grades([GradeUpdate("r1", Grade.A, clock.now(), 1)])
    with pytest.raises(ServiceNotHandled):
        _tracks(vault, department="tax")
    with pytest.raises(NoConsent):
        _tracks(vault)  # handles it, but holds no consent
    with pytest.raises(NoConsent) as unknown:
        _tracks(vault, resident="nobody-knows")
    consent = _grant(vault, clock, **PERMIT)
    assert _tracks(vault).tracks == ("reuse", "missing-allowed", "priority")
    vault.consents.revoke("r1", consent.id)
    with pytest.raises(NoConsent) as revoked:
        _tracks(vault)
    assert str(unknown.value) == str(revoked.value)


# Policy versions


def test_publishing_changes_the_version_and_old_versions_can_be_rebuilt(vault: Core) -> None:
    first = vault.policies.current_version()
    stricter = (
        "p, caseworker, civil-affairs, id-card, subsistence-allowance, A, A\n"
        "g, officer, caseworker, civil-affairs\n"
    )
    second = vault.policies.publish(stricter).value
    assert second != first
    assert vault.policies.current_version() == second
    request: dict[str, Any] = {
        "officer": "o",
        "department": "civil-affairs",
        "doc_type": "id-card",
        "purpose": "subsistence-allowance",
        "grade": Grade.C,
        "trust": TrustLevel.C,
    }
    assert vault.policies.decision_point(first).decide(**request).allowed
    assert not vault.policies.decision_point(second).decide(**request).allowed
    assert vault.policies.publish(stricter).value == second


def test_a_bad_policy_is_refused_with_its_line_and_changes_nothing(vault: Core) -> None:
    before = vault.policies.current_version()
    events = vault.events.head()
    with pytest.raises(InvalidPolicy) as refused:
        vault.policies.publish("p, caseworker, civil-affairs, id-card, x, C, C\np, bad\n")
    assert refused.value.line == 2
    assert vault.policies.current_version() == before
    assert vault.events.head() == events


# Grade pushes


def test_ten_thousand_grade_updates_take_few_transactions(
    vault: Core, clock: MovableClock
) -> None:
    writes: list[int] = []
    key_batches: list[int] = []
    insert, create_many = vault.application.recorder.insert_events, vault.keys.create_many

    def counting_insert(stored_events: Any, **kwargs: Any) -> Any:
        writes.append(len(stored_events))
        return insert(stored_events, **kwargs)

    def counting_keys(resident_ids: Any) -> None:
        key_batches.append(len(list(resident_ids)))
        create_many(resident_ids)

    vault.application.recorder.insert_events = counting_insert  # type: ignore[method-assign]
    vault.keys.create_many = counting_keys  # type: ignore[method-assign]
    vault.keys.create = None  # type: ignore[assignment,method-assign]  # one at a time: never
    now = clock.now()
    outcome = vault.residents.record_grades(
        [GradeUpdate(f"r{n}", Grade.B, now, 1) for n in range(10_000)]
    )
    assert (outcome.applied, outcome.stale) == (10_000, 0)
    assert len(writes) == 20  # 500 residents a transaction
    assert sum(writes) == 20_000  # each: registered, then graded
    assert key_batches == [500] * 20
    assert vault.residents.resident("r9999").grade is Grade.B


# Group commit: fetches waiting together are judged in order and committed together


class HeldClock(MovableClock):
    """A clock the fetch thread can be held at: while ``hold`` is set, ``now()`` called
    from the vault's fetch thread waits until ``release``."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.hold = threading.Event()
        self.release = threading.Event()
        self.holding = threading.Event()

    def now(self) -> datetime:
        if self.hold.is_set() and threading.current_thread().name == "vault-fetches":
            self.hold.clear()
            self.holding.set()
            self.release.wait(10)
        return super().now()


def _batched(vault: Core, clock: HeldClock, requests: list[dict[str, Any]]) -> list[Any]:
    """Submit the first request, hold the fetch thread inside it, queue the rest behind it,
    then let go: the rest are served as one batch. Returns each outcome (or exception)."""
    clock.hold.set()
    futures = [vault.fetches.submit(**requests[0])]
    assert clock.holding.wait(10)
    futures += [vault.fetches.submit(**r) for r in requests[1:]]
    clock.release.set()
    outcomes: list[Any] = []
    for future in futures:
        try:
            outcomes.append(future.result(30))
        except Exception as e:
            outcomes.append(e)
    return outcomes


def _request(document_id: Any, resident: str = "r1", **overrides: str) -> dict[str, Any]:
    return {
        "officer": "officer-li", "resident_id": resident, "document_id": document_id,
        **CIVIL, **overrides,
    }


def test_a_batch_of_fetches_under_a_limited_consent_allows_exactly_its_uses() -> None:
    clock = HeldClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    vault = memory_vault(clock)
    document = vault.documents.submit("r1", [b"card"], ID_CARD).value
    consent = _grant(vault, clock, max_uses=3)
    vault.policies.current_version()  # published before the counting starts
    writes: list[int] = []
    insert = vault.application.recorder.insert_events

    def counting_insert(stored_events: Any, **kwargs: Any) -> Any:
        writes.append(len(stored_events))
        return insert(stored_events, **kwargs)

    vault.application.recorder.insert_events = counting_insert  # type: ignore[method-assign]
    outcomes = _batched(
        vault, clock, [_request(document.id, request_id=f"req-{n}") for n in range(8)]
    )
    allowed = [o for o in outcomes if not isinstance(o, Exception)]
    denied = [o for o in outcomes if isinstance(o, AccessDenied)]
    assert len(allowed) == 3
    assert len(denied) == 5
    assert all("consent-used-up" in d.reason_codes for d in denied)
    assert writes == [3, 2 * 3 + 5]  # the first alone; the other seven in one transaction
    assert vault.consents.consent("r1", consent.id).uses == 3
    # Each request's events are together in the log, its access first, in the order asked.
    topic_of = {
        ACCESS_TOPIC: "access",
        USED_TOPIC: "used",
        REUSED_TOPIC: "reused",
    }
    log = [
        (topic_of[n.topic], n.id)
        for n in vault.events.select_notifications(1, 1000)
        if n.topic in topic_of
    ]
    assert [kind for kind, _ in log] == ["access", "used", "reused"] * 3 + ["access"] * 5
    accesses = _accesses(vault)
    assert [a.request_id for a in accesses] == [f"req-{n}" for n in range(8)]
    # Each outcome's position is its own last event's.
    ends = [position for n, (_, position) in enumerate(log) if n in (2, 5, 8, 9, 10, 11, 12, 13)]
    assert [o.position for o in outcomes] == ends
    report = vault.audit.readjudicate()
    assert (report.checked, report.mismatches) == (8, [])
    vault.close()


def test_one_failing_fetch_in_a_batch_does_not_fail_the_others() -> None:
    clock = HeldClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    vault = memory_vault(clock)
    mine = vault.documents.submit("r1", [b"card"], ID_CARD).value
    theirs = vault.documents.submit("r2", [b"card"], ID_CARD).value
    _grant(vault, clock)
    _grant(vault, clock, resident="r2")
    # Writing r2's events fails (as if r2's key were shredded while they were sealed):
    # the batch is served again one by one, and only r2's fetch fails.
    to_stored_event = vault.application.mapper.to_stored_event

    def failing_for_r2(event: Any) -> Any:
        if getattr(event, "resident_id", None) == "r2":
            raise ResidentKeyShredded("r2")
        return to_stored_event(event)

    vault.application.mapper.to_stored_event = failing_for_r2  # type: ignore[method-assign,assignment]
    outcomes = _batched(
        vault, clock,
        [_request(mine.id), _request(theirs.id, resident="r2"), _request(mine.id)],
    )
    assert isinstance(outcomes[0], RecordedFetch)
    assert isinstance(outcomes[1], ResidentErased)
    assert isinstance(outcomes[2], RecordedFetch)
    assert [a.resident_id for a in _accesses(vault)] == ["r1", "r1"]
    vault.close()


def test_bad_input_is_refused_before_anything_is_queued(vault: Core) -> None:
    with pytest.raises(InvalidInput):
        vault.fetches.submit(
            officer="o", department="civil-affairs", resident_id="r1",
            document_id="not-a-uuid", purpose="subsistence-allowance",
        )
    assert _accesses(vault) == []
