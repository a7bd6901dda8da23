"""Issuing and verifying documents: powers the policy gives a department, never the role
alone; every attempt recorded; a refused one changes nothing of the document."""

from __future__ import annotations

import contextlib

import pytest
from eventsourcing.utils import get_topic

from tests.support import MemoryBlobStore, memory_vault
from vault.attestation import AttestationAttempt
from vault.document import Document
from vault.errors import (
    AlreadyTrusted,
    AttestationDenied,
    DocumentWithdrawn,
    ResidentErased,
    ResidentNotFound,
)
from vault.inputs import DocumentDetails
from vault.markers import ERASED

ID_CARD = DocumentDetails("id-card", "居民身份证")
DIPLOMA = DocumentDetails("diploma", "毕业证书")


def _attempts(vault: object) -> list[AttestationAttempt.Recorded]:
    events = vault.events  # type: ignore[attr-defined]
    topic = get_topic(AttestationAttempt.Recorded)
    return events.decode(events.select_notifications(1, 10_000, topics=[topic]))  # type: ignore[no-any-return]


def test_the_department_that_keeps_a_record_issues_it_at_trust_level_a() -> None:
    vault = memory_vault()
    issued = vault.documents.issue("public-security", "officer-zhao", "r1", [b"card"], ID_CARD)
    assert (issued.value.trust_level.value, issued.value.issuer) == ("A", "public-security")
    [attempt] = _attempts(vault)
    assert (attempt.act, attempt.allowed, attempt.document_id) == ("issue", True, issued.value.id)
    assert attempt.rule == "p3, caseworker, public-security, id-card, issue"
    topics = [n.topic for n in vault.events.select_notifications(1, 100)]
    # One transaction, the attempt first: the state before it is the state it was judged on.
    assert topics[-3:] == [
        get_topic(AttestationAttempt.Recorded),
        "vault.resident:Resident.DocumentFiled",
        get_topic(Document.Issued),
    ]
    assert issued.position == vault.events.head()


def test_a_department_the_policy_does_not_name_cannot_issue_and_stores_nothing() -> None:
    blobs = MemoryBlobStore()
    vault = memory_vault(blobs=blobs)
    vault.residents.register("r1")
    with pytest.raises(AttestationDenied) as denied:
        vault.documents.issue("civil-affairs", "officer-li", "r1", [b"forged"], ID_CARD)
    assert denied.value.reason_codes == ("no-rule",)
    assert denied.value.position == vault.events.head()
    assert blobs.blobs == {}
    assert vault.residents.resident("r1").document_ids == []
    [attempt] = _attempts(vault)
    assert (attempt.act, attempt.allowed, attempt.department) == ("issue", False, "civil-affairs")
    assert attempt.reasons == ["no rule lets civil-affairs issue id-card"]


def test_a_refused_issue_registers_nobody() -> None:
    vault = memory_vault()
    vault.policies.current_version()  # the shipped policy, published on first need
    before = vault.events.head()
    with pytest.raises(AttestationDenied):
        vault.documents.issue("tax", "officer", "newcomer", [b"x"], ID_CARD)
    assert vault.events.head() == before + 1  # the attempt only
    with pytest.raises(ResidentNotFound):
        vault.residents.resident("newcomer")
    [attempt] = _attempts(vault)
    assert attempt.resident_id == "newcomer"
    assert attempt.reasons is ERASED  # no key to seal with: nothing personal was written


def test_verifying_is_for_the_departments_whose_rules_name_the_type() -> None:
    vault = memory_vault()
    card = vault.documents.submit("r1", [b"card"], ID_CARD).value
    diploma = vault.documents.submit("r1", [b"diploma"], DIPLOMA).value
    with pytest.raises(AttestationDenied) as denied:
        vault.documents.verify("housing", "officer-zhou", diploma.id)
    assert denied.value.reason_codes == ("no-rule",)
    assert vault.documents.find(diploma.id).trust_level.value == "C"
    verified = vault.documents.verify("housing", "officer-zhou", card.id).value
    assert verified.trust_level.value == "B"
    assert [(a.doc_type, a.allowed) for a in _attempts(vault)] == [
        ("diploma", False), ("id-card", True)
    ]


def test_a_verification_the_state_refuses_is_recorded_and_raises_as_before() -> None:
    vault = memory_vault()
    card = vault.documents.submit("r1", [b"card"], ID_CARD).value
    vault.documents.verify("housing", "officer", card.id)
    with pytest.raises(AlreadyTrusted):
        vault.documents.verify("civil-affairs", "officer", card.id)
    other = vault.documents.submit("r1", [b"card 2"], ID_CARD).value
    vault.documents.withdraw("r1", other.id)
    with pytest.raises(DocumentWithdrawn):
        vault.documents.verify("housing", "officer", other.id)
    vault.residents.erase("r1")
    with pytest.raises(ResidentErased):
        vault.documents.verify("housing", "officer", card.id)
    assert [(a.allowed, a.reason_codes) for a in _attempts(vault)] == [
        (True, []),
        (False, ["already-trusted"]),
        (False, ["document-withdrawn"]),
        (False, ["resident-erased", "already-trusted"]),
    ]
    assert vault.store.get(Document, card.id, Exception).trust_level.value == "B"  # type: ignore[arg-type]


def test_every_attestation_is_decided_again_alike() -> None:
    vault = memory_vault()
    card = vault.documents.submit("r1", [b"card"], ID_CARD).value
    vault.documents.verify("housing", "officer", card.id)
    for department in ("tax", "public-security"):
        with contextlib.suppress(AttestationDenied):
            vault.documents.issue(department, "officer", "r1", [b"x"], ID_CARD)
    with pytest.raises(AlreadyTrusted):
        vault.documents.verify("housing", "officer", card.id)
    report = vault.audit.readjudicate()
    assert report.checked == 4
    assert report.mismatches == []
