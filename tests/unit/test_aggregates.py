"""Aggregate unit tests: every command and every way it can be refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from policy.scales import Grade, TrustLevel
from vault.consent import Consent, ConsentStatus
from vault.document import Document, DocumentStatus
from vault.errors import (
    AlreadyTrusted,
    ConsentAlreadyRevoked,
    ConsentExpired,
    ConsentNotYetValid,
    ConsentRevoked,
    ConsentUsedUp,
    ConsentWrongDepartment,
    ConsentWrongDocType,
    ConsentWrongPurpose,
    DocumentRevoked,
    DocumentSuperseded,
    DocumentWithdrawn,
    NotTheIssuer,
    ResidentErased,
)
from vault.ids import resident_aggregate_id
from vault.resident import Resident

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _fields(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "resident_id": "r1",
        "doc_type": "id-card",
        "title": "居民身份证",
        "filename": "id.png",
        "content_type": "image/png",
        "size": 10,
        "content_sha256": "00" * 32,
        "blob_key": "documents/aa/aa",
        "sealed_key": "c2VhbGVk",
        "expires_at": None,
        "replaces": None,
    }
    fields.update(overrides)
    return fields


def _submitted() -> Document:
    return Document.submit(uuid.uuid4(), at=NOW, **_fields())


def _issued(department: str = "public-security") -> Document:
    return Document.issue(
        uuid.uuid4(), department=department, officer="o1", at=NOW, **_fields()
    )


def _consent(**overrides: object) -> Consent:
    args: dict[str, object] = {
        "resident_id": "r1",
        "department": "civil-affairs",
        "doc_types": ["id-card", "income-proof"],
        "purpose": "subsistence-allowance",
        "valid_from": NOW,
        "valid_until": NOW + timedelta(days=30),
        "max_uses": None,
        "granted_at": NOW,
        "timestamp": NOW,
    }
    args.update(overrides)
    return Consent(**args)  # type: ignore[arg-type]


def _use(consent: Consent, now: datetime = NOW, **overrides: str) -> None:
    args = {
        "department": "civil-affairs",
        "doc_type": "id-card",
        "purpose": "subsistence-allowance",
    }
    args.update(overrides)
    consent.use(document_id=uuid.uuid4(), request_id="req", now=now, **args)


# Resident


def test_resident_id_is_derived_from_the_resident_id() -> None:
    assert Resident(resident_id="r1", timestamp=NOW).id == resident_aggregate_id("r1")


def test_new_resident_is_unrated() -> None:
    resident = Resident(resident_id="r1", timestamp=NOW)
    assert resident.grade is None
    assert resident.grade_label == "unrated"


def test_newer_grade_sequence_replaces_the_grade() -> None:
    resident = Resident(resident_id="r1", timestamp=NOW)
    assert resident.record_grade(Grade.B, 1, NOW, NOW)
    assert resident.record_grade(Grade.A, 2, NOW, NOW)
    assert resident.grade is Grade.A
    assert resident.grade_sequence == 2


@pytest.mark.parametrize("sequence", [1, 2])
def test_older_or_equal_grade_sequence_is_stale(sequence: int) -> None:
    resident = Resident(resident_id="r1", timestamp=NOW)
    resident.record_grade(Grade.A, 2, NOW, NOW)
    assert not resident.record_grade(Grade.D, sequence, NOW, NOW)
    assert resident.grade is Grade.A
    assert len(resident.collect_events()) == 2  # registered + the first grade only


def test_erased_resident_refuses_grades_documents_and_consents() -> None:
    resident = Resident(resident_id="r1", timestamp=NOW)
    resident.erase(NOW)
    with pytest.raises(ResidentErased):
        resident.record_grade(Grade.A, 1, NOW, NOW)
    with pytest.raises(ResidentErased):
        resident.file_document(uuid.uuid4(), NOW)
    with pytest.raises(ResidentErased):
        resident.file_consent(uuid.uuid4(), "housing", "housing-subsidy", NOW)
    with pytest.raises(ResidentErased):
        resident.erase(NOW)


def test_resident_indexes_documents_and_consents_in_order() -> None:
    resident = Resident(resident_id="r1", timestamp=NOW)
    first, second, consent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    resident.file_document(first, NOW)
    resident.file_document(second, NOW)
    resident.file_consent(consent, "housing", "housing-subsidy", NOW)
    assert resident.document_ids == [first, second]
    assert resident.consent_ids == [consent]
    assert resident.consents_for("housing", "housing-subsidy") == [consent]
    assert resident.consents_for("housing", "subsistence-allowance") == []


# Document


def test_submitted_document_is_trust_level_c_with_no_issuer() -> None:
    document = _submitted()
    assert document.trust_level is TrustLevel.C
    assert document.issuer is None
    assert document.status is DocumentStatus.ACTIVE
    assert isinstance(document.collect_events()[0], Document.Submitted)


def test_issued_document_is_trust_level_a_from_its_department() -> None:
    document = _issued("public-security")
    assert document.trust_level is TrustLevel.A
    assert document.issuer == "public-security"
    assert isinstance(document.collect_events()[0], Document.Issued)


def test_verifying_an_uploaded_document_raises_it_to_b() -> None:
    document = _submitted()
    document.verify("housing", "o2", NOW)
    assert document.trust_level is TrustLevel.B
    assert document.verified_by == "housing"


def test_verifying_twice_is_refused() -> None:
    document = _submitted()
    document.verify("housing", "o2", NOW)
    with pytest.raises(AlreadyTrusted):
        document.verify("housing", "o2", NOW)


def test_verifying_an_issued_document_is_refused() -> None:
    with pytest.raises(AlreadyTrusted):
        _issued().verify("housing", "o2", NOW)


def test_supersede_ends_the_old_version() -> None:
    document = _submitted()
    newer = uuid.uuid4()
    document.supersede(newer, NOW)
    assert document.status is DocumentStatus.SUPERSEDED
    assert document.superseded_by == newer
    with pytest.raises(DocumentSuperseded):
        document.check_available()


def test_only_the_issuer_may_revoke() -> None:
    document = _issued("public-security")
    with pytest.raises(NotTheIssuer):
        document.revoke("housing", "wrong department", NOW)
    with pytest.raises(NotTheIssuer):
        _submitted().revoke("housing", "not issued by anyone", NOW)


def test_revoked_document_is_unavailable() -> None:
    document = _issued("public-security")
    document.revoke("public-security", "cancelled at source", NOW)
    assert document.status is DocumentStatus.REVOKED
    assert document.end_reason == "cancelled at source"
    with pytest.raises(DocumentRevoked):
        document.check_available()
    with pytest.raises(DocumentRevoked):
        document.revoke("public-security", "again", NOW)


def test_withdrawn_document_cannot_be_verified_withdrawn_or_superseded() -> None:
    document = _submitted()
    document.withdraw(NOW)
    with pytest.raises(DocumentWithdrawn):
        document.withdraw(NOW)
    with pytest.raises(DocumentWithdrawn):
        document.verify("housing", "o", NOW)
    with pytest.raises(DocumentWithdrawn):
        document.supersede(uuid.uuid4(), NOW)


def test_expiry_is_judged_against_the_given_time() -> None:
    document = Document.submit(
        uuid.uuid4(), at=NOW, **_fields(expires_at=NOW + timedelta(days=1))
    )
    assert not document.is_expired(NOW)
    assert document.is_expired(NOW + timedelta(days=1))
    assert not _submitted().is_expired(NOW + timedelta(days=10_000))


def test_revoked_event_seals_the_reason_as_personal() -> None:
    assert Document.Revoked.personal_fields == ("reason",)
    assert set(Document.Filed.personal_fields) == {
        "title", "filename", "content_sha256", "attributes",
    }


# Consent


def test_consent_is_active_inside_its_window() -> None:
    consent = _consent()
    assert consent.status(NOW) is ConsentStatus.ACTIVE
    assert consent.status(NOW - timedelta(seconds=1)) is ConsentStatus.NOT_YET_VALID
    assert consent.status(NOW + timedelta(days=30)) is ConsentStatus.EXPIRED


def test_use_counts_and_used_up_consent_refuses() -> None:
    consent = _consent(max_uses=2)
    _use(consent)
    _use(consent)
    assert consent.uses == 2
    assert consent.uses_left == 0
    assert consent.status(NOW) is ConsentStatus.USED_UP
    with pytest.raises(ConsentUsedUp):
        _use(consent)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"department": "housing"}, ConsentWrongDepartment),
        ({"doc_type": "diploma"}, ConsentWrongDocType),
        ({"purpose": "housing-subsidy"}, ConsentWrongPurpose),
    ],
)
def test_use_outside_the_consent_terms_is_refused(
    overrides: dict[str, str], error: type[Exception]
) -> None:
    consent = _consent()
    with pytest.raises(error):
        _use(consent, **overrides)
    assert consent.uses == 0


def test_use_before_or_after_the_window_is_refused() -> None:
    consent = _consent()
    with pytest.raises(ConsentNotYetValid):
        _use(consent, now=NOW - timedelta(minutes=1))
    with pytest.raises(ConsentExpired):
        _use(consent, now=NOW + timedelta(days=31))


def test_revoked_consent_refuses_use_and_second_revoke() -> None:
    consent = _consent()
    consent.revoke(NOW)
    assert consent.status(NOW) is ConsentStatus.REVOKED
    with pytest.raises(ConsentRevoked):
        _use(consent)
    with pytest.raises(ConsentAlreadyRevoked):
        consent.revoke(NOW)


def test_replaying_consent_events_gives_the_same_state() -> None:
    consent = _consent(max_uses=3)
    _use(consent)
    consent.revoke(NOW)
    events = consent.collect_events()
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert replayed == consent


def test_a_use_or_reuse_applied_by_its_version_alone_equals_the_decoded_event() -> None:
    """Re-adjudication folds ``Consent.Used`` and ``Document.Reused`` without decoding them;
    the aggregate must come out as if each event had been applied whole, but for the time
    of its last change, which is inside the undecoded event."""
    later = NOW + timedelta(minutes=1)  # each event carries its own time: the uses come later
    consent = _consent(max_uses=3)
    _use(consent, later)
    _use(consent, later)
    document = _submitted()
    document.reuse("civil-affairs", "subsistence-allowance", uuid.uuid4(), later)
    document.reuse("civil-affairs", "subsistence-allowance", uuid.uuid4(), later)
    for aggregate, counted, tally in (
        (consent, "Consent.Used", Consent.apply_use),
        (document, "Document.Reused", Document.apply_reuse),
    ):
        replayed = None
        for event in aggregate.collect_events():
            if type(event).__qualname__ == counted:
                tally(replayed, event.originator_version)
            else:
                replayed = event.mutate(replayed)
        assert replayed is not None
        assert replayed.modified_on < aggregate.modified_on
        assert {**vars(replayed), "_modified_on": None} == {**vars(aggregate), "_modified_on": None}


def test_events_are_stamped_with_the_time_the_command_was_given() -> None:
    resident = Resident(resident_id="r1", timestamp=NOW)
    resident.file_document(uuid.uuid4(), NOW + timedelta(hours=1))
    assert [e.timestamp for e in resident.collect_events()] == [NOW, NOW + timedelta(hours=1)]


def test_an_event_is_never_stamped_before_the_event_before_it() -> None:
    """A command that read the time before another's event on the same aggregate (or on a
    clock behind another process's) must not put the aggregate's history out of order."""
    resident = Resident(resident_id="r1", timestamp=NOW)
    resident.file_document(uuid.uuid4(), NOW - timedelta(seconds=5))
    stamps = [e.timestamp for e in resident.collect_events()]
    assert stamps == [NOW, NOW]
    assert resident.modified_on == NOW
