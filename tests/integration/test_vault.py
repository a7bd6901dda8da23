"""The vault application on real stores: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from adapters.wiring import Services, open_services
from keys.receipts import verify_consent_receipt
from policy.scales import Grade, TrustLevel
from tests.support import MovableClock, consents_of, library, read_document
from vault.document import DocumentStatus
from vault.errors import (
    AccessDenied,
    AlreadyTrusted,
    BlobMissing,
    ConsentNotFound,
    ContentCorrupted,
    DocumentNotFound,
    DocumentSuperseded,
    InvalidInput,
    NotTheIssuer,
    ResidentErased,
    ResidentNotFound,
)
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate
from vault.markers import ERASED
from vault.services.fetches import Fetched

ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证", content_type="image/png")


def _events(services: Services) -> int:
    return services.events.head()


def _consent(clock: MovableClock, **overrides: object) -> ConsentRequest:
    args: dict[str, object] = {
        "department": "civil-affairs",
        "doc_types": ("id-card",),
        "purpose": "subsistence-allowance",
        "valid_until": clock.now() + timedelta(days=30),
    }
    args.update(overrides)
    return ConsentRequest(**args)  # type: ignore[arg-type]


def _fetch(services: Services, document_id: UUID, request_id: str = "r") -> Fetched:
    return services.fetches.fetch(
        officer="officer-li",
        department="civil-affairs",
        resident_id="r1",
        document_id=document_id,
        purpose="subsistence-allowance",
        request_id=request_id,
    )


def test_registration_is_idempotent(services: Services) -> None:
    first = services.residents.register("r1").value
    again = services.residents.register("r1").value
    assert first.id == again.id
    assert _events(services) == 1


def test_unknown_resident_is_not_found(services: Services) -> None:
    with pytest.raises(ResidentNotFound):
        services.residents.resident("nobody")


def test_submitted_document_streams_back_and_joins_the_library(services: Services) -> None:
    content = bytes(range(256)) * 1000
    document = services.documents.submit("r1", io.BytesIO(content), ID_CARD).value
    assert document.trust_level is TrustLevel.C
    assert document.size == len(content)
    assert b"".join(read_document(services, "r1", document.id)) == content
    assert [d.id for d in library(services, "r1")] == [document.id]
    assert services.blobs.exists(document.blob_key)


def test_another_residents_document_is_not_found(services: Services) -> None:
    document = services.documents.submit("r1", [b"mine"], ID_CARD).value
    services.residents.register("r2")
    with pytest.raises(DocumentNotFound):
        services.documents.document("r2", document.id)
    with pytest.raises(DocumentNotFound):
        read_document(services, "r2", document.id)


def test_a_new_version_supersedes_the_old_one(services: Services) -> None:
    old = services.documents.submit("r1", [b"v1"], ID_CARD).value
    new = services.documents.submit("r1", [b"v2"], ID_CARD, replaces=old.id).value
    assert services.documents.document("r1", old.id).status is DocumentStatus.SUPERSEDED
    assert [d.id for d in library(services, "r1")] == [new.id]
    with pytest.raises(DocumentSuperseded):
        services.documents.submit("r1", [b"v3"], ID_CARD, replaces=old.id)


def test_refused_upload_leaves_no_event_and_no_blob(services: Services) -> None:
    old = services.documents.submit("r1", [b"v1"], ID_CARD).value
    events = _events(services)
    blobs = {b.key for b in services.blobs.list()}
    diploma = DocumentDetails(doc_type="diploma", title="毕业证书")
    with pytest.raises(InvalidInput, match="replaces"):
        services.documents.submit("r1", [b"x"], diploma, replaces=old.id)
    with pytest.raises(InvalidInput, match="empty"):
        services.documents.submit("r1", [b""], ID_CARD)
    services.documents.max_document_bytes = 10
    with pytest.raises(InvalidInput, match="larger"):
        services.documents.submit("r1", [b"x" * 6, b"y" * 6], ID_CARD)
    assert _events(services) == events
    assert {b.key for b in services.blobs.list()} == blobs


def test_issue_verify_revoke_and_withdraw(services: Services) -> None:
    documents = services.documents
    issued = documents.issue("public-security", "officer-1", "r1", [b"card"], ID_CARD).value
    assert (issued.trust_level, issued.issuer) == (TrustLevel.A, "public-security")
    with pytest.raises(AlreadyTrusted):
        documents.verify("housing", "officer-2", issued.id)
    with pytest.raises(NotTheIssuer):
        documents.revoke("housing", issued.id, "not mine")
    revoked = documents.revoke("public-security", issued.id, "cancelled").value
    assert revoked.status is DocumentStatus.REVOKED

    uploaded = documents.submit("r1", [b"scan"], ID_CARD).value
    assert documents.verify("housing", "officer-2", uploaded.id).value.trust_level is TrustLevel.B
    assert documents.withdraw("r1", uploaded.id).value.status is DocumentStatus.WITHDRAWN
    assert library(services, "r1") == []


def test_consent_receipt_verifies_and_revoke_stops_use(
    services: Services, clock: MovableClock
) -> None:
    document = services.documents.submit("r1", [b"card"], ID_CARD).value
    granted = services.consents.grant("r1", _consent(clock))
    claims = verify_consent_receipt(granted.receipt, services.signing.public_keys("receipts"))
    assert claims["consentReceiptID"] == str(granted.consent.id)
    assert b"".join(_fetch(services, document.id).content) == b"card"
    services.consents.revoke("r1", granted.consent.id)
    with pytest.raises(AccessDenied) as denied:
        _fetch(services, document.id)
    assert denied.value.reason_codes == ("consent-revoked",)
    assert [c.id for c in consents_of(services, "r1")] == [granted.consent.id]


def test_another_residents_consent_is_not_found(services: Services, clock: MovableClock) -> None:
    granted = services.consents.grant("r1", _consent(clock))
    services.residents.register("r2")
    with pytest.raises(ConsentNotFound):
        services.consents.revoke("r2", granted.consent.id)


def test_consent_must_end_in_the_future(services: Services, clock: MovableClock) -> None:
    with pytest.raises(InvalidInput, match="future"):
        services.consents.grant("r1", _consent(clock, valid_until=clock.now()))
    with pytest.raises(InvalidInput, match="doc_types"):
        _consent(clock, doc_types=())


def test_max_uses_one_with_32_concurrent_uses_allows_exactly_one(
    services: Services, clock: MovableClock
) -> None:
    document = services.documents.submit("r1", [b"card"], ID_CARD).value
    consent = services.consents.grant("r1", _consent(clock, max_uses=1)).consent
    barrier = threading.Barrier(32)
    outcomes: list[str] = []

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            _fetch(services, document.id, f"req-{n}")
            outcomes.append("allowed")
        except AccessDenied as e:
            outcomes.append(",".join(e.reason_codes))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["allowed"] + ["consent-used-up"] * 31
    assert services.consents.consent("r1", consent.id).uses == 1


def test_grades_batch_registers_unknown_residents_and_counts_stale(services: Services) -> None:
    now = datetime.now(UTC)
    outcome = services.residents.record_grades(
        [
            GradeUpdate("new-1", Grade.A, now, 5),
            GradeUpdate("new-1", Grade.D, now, 4),
            GradeUpdate("new-2", Grade.B, now, 1),
        ]
    )
    assert (outcome.applied, outcome.stale) == (2, 1)
    assert services.residents.resident("new-1").grade is Grade.A


def test_bad_grade_row_rejects_the_whole_batch(services: Services) -> None:
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput, match=r"updates\[1\]\.sequence"):
        services.residents.record_grades(
            [GradeUpdate("r1", Grade.A, now, 1), GradeUpdate("r2", Grade.B, now, -1)]
        )
    assert _events(services) == 0


def test_erasure_refuses_everything_and_can_be_repeated(
    services: Services, clock: MovableClock
) -> None:
    document = services.documents.submit("r1", [b"card"], ID_CARD).value
    services.residents.erase("r1")
    services.residents.erase("r1")
    with pytest.raises(ResidentErased):
        library(services, "r1")
    with pytest.raises(ResidentErased):
        services.documents.submit("r1", [b"again"], ID_CARD)
    with pytest.raises(ResidentErased):
        services.consents.grant("r1", _consent(clock))
    outcome = services.residents.record_grades([GradeUpdate("r1", Grade.A, datetime.now(UTC), 9)])
    assert (outcome.applied, outcome.erased) == (0, 1)
    replayed = services.store.as_of(document.id, clock.now())
    assert replayed is not None
    assert replayed.title is ERASED  # type: ignore[attr-defined]


def test_aggregate_as_it_stood_at_a_past_time(services: Services, clock: MovableClock) -> None:
    document = services.documents.submit("r1", [b"scan"], ID_CARD).value
    clock.advance(timedelta(seconds=1))
    between = clock.now()
    clock.advance(timedelta(seconds=1))
    services.documents.verify("housing", "officer", document.id)
    past = services.store.as_of(document.id, between)
    assert past is not None
    assert past.trust_level is TrustLevel.C  # type: ignore[attr-defined]
    assert services.store.as_of(document.id, document.created_on - timedelta(seconds=1)) is None


def test_missing_or_altered_blob_is_an_integrity_error(services: Services) -> None:
    document = services.documents.submit("r1", [b"x" * 100_000], ID_CARD).value
    sealed = b"".join(services.blobs.get(document.blob_key))
    services.blobs.put(document.blob_key, [sealed[:-1] + bytes([sealed[-1] ^ 1])])
    with pytest.raises(ContentCorrupted):
        b"".join(read_document(services, "r1", document.id))
    services.blobs.delete(document.blob_key)
    with pytest.raises(BlobMissing):
        read_document(services, "r1", document.id)


def test_gc_deletes_only_old_unreferenced_blobs(services: Services, clock: MovableClock) -> None:
    document = services.documents.submit("r1", [b"kept"], ID_CARD).value
    services.blobs.put("documents/zz/orphan", [b"left by a crashed upload"])
    young = services.documents.collect_garbage(timedelta(hours=1))
    assert (young.deleted, young.too_young, young.referenced) == (0, 1, 1)
    clock.advance(timedelta(hours=2))
    swept = services.documents.collect_garbage(timedelta(hours=1))
    assert (swept.deleted, swept.referenced) == (1, 1)
    assert not services.blobs.exists("documents/zz/orphan")
    assert services.blobs.exists(document.blob_key)


def test_erasure_drops_the_residents_aggregates_from_the_cache(services: Services) -> None:
    document = services.documents.submit("r1", [b"card"], ID_CARD).value
    library(services, "r1")  # loads, and caches, the resident and the document
    cache = services.application.repository.cache
    assert cache is not None
    cached = cache.get(document.id)
    assert cached.title == "居民身份证"
    services.residents.erase("r1")
    with pytest.raises(KeyError):
        cache.get(document.id)


def test_a_cached_aggregate_is_brought_up_to_date_by_a_write_elsewhere(
    services: Services, clock: MovableClock
) -> None:
    document = services.documents.submit("r1", [b"card"], ID_CARD).value
    library(services, "r1")  # cached here
    elsewhere = open_services(services.settings, clock=clock)
    try:
        elsewhere.documents.withdraw("r1", document.id)
    finally:
        elsewhere.close()
    assert services.documents.find(document.id).status is DocumentStatus.WITHDRAWN
    assert library(services, "r1") == []
