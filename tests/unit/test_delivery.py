"""A fetch is charged only when its bytes can go out (issue 15, item 3): a range the
document cannot satisfy, or bytes that cannot be read, leave the attempt recorded and the
consent's use and the document's reuse untouched (or given back)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.support import MemoryBlobStore, MovableClock, memory_vault
from vault.access import AccessAttempt
from vault.errors import BlobStoreUnavailable, RangeNotSatisfiable
from vault.inputs import ByteRange, ConsentRequest, DocumentDetails

CIVIL = {"department": "civil-affairs", "purpose": "subsistence-allowance"}


class FlakyBlobs(MemoryBlobStore):
    """Memory blobs whose store goes down on demand."""

    down = False

    def get(self, key: str) -> Iterator[bytes]:
        if self.down:
            raise BlobStoreUnavailable("the blob store could not be reached to read a document")
        return super().get(key)

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        if self.down:
            raise BlobStoreUnavailable("the blob store could not be reached to store a document")
        return super().put(key, chunks)


def _world(blobs: Any = None) -> tuple[Any, Any, Any]:
    clock = MovableClock()
    vault = memory_vault(clock, **({"blobs": blobs} if blobs is not None else {}))
    document = vault.documents.submit("r1", [b"0123456789"], DocumentDetails("id-card", "t")).value
    consent = vault.consents.grant(
        "r1",
        ConsentRequest(valid_until=clock.now() + timedelta(days=1), max_uses=1,
                       doc_types=("id-card",), **CIVIL),
    ).consent
    return vault, document, consent


def _fetch(vault: Any, document: Any, **extra: Any) -> Any:
    return vault.fetches.fetch(
        officer="o", resident_id="r1", document_id=document.id, **CIVIL, **extra
    )


def test_ranges_are_spans_of_the_document_or_nothing() -> None:
    assert ByteRange(2, 5).span(10) == (2, 6)
    assert ByteRange(2, None).span(10) == (2, 10)
    assert ByteRange(None, 3).span(10) == (7, 10)
    assert ByteRange(None, 30).span(10) == (0, 10)
    assert ByteRange(8, 99).span(10) == (8, 10)
    assert ByteRange(10, None).span(10) is None
    assert ByteRange(None, 0).span(10) is None
    assert ByteRange(0, None).span(0) is None


def test_an_allowed_fetch_of_a_range_the_document_lacks_is_recorded_and_not_charged() -> None:
    vault, document, consent = _world()
    with pytest.raises(RangeNotSatisfiable) as refused:
        vault.fetches.submit(
            officer="o", resident_id="r1", document_id=document.id,
            byte_range=ByteRange(100, None), **CIVIL,
        ).result()
    assert refused.value.size == 10
    access = vault.store.get(AccessAttempt, refused.value.access_id, Exception)  # type: ignore[arg-type]
    assert (access.allowed, access.undelivered) == (True, "range-not-satisfiable")
    assert vault.consents.consent("r1", consent.id).uses == 0
    assert vault.documents.find(document.id).reuse_count == 0
    assert b"".join(_fetch(vault, document).content) == b"0123456789"  # its one use is left
    assert vault.audit.readjudicate().mismatches == []


def test_a_fetch_whose_bytes_cannot_be_read_gives_its_use_back() -> None:
    blobs = FlakyBlobs()
    vault, document, consent = _world(blobs)
    blobs.down = True
    with pytest.raises(BlobStoreUnavailable):
        _fetch(vault, document)
    [access] = [
        vault.application.repository.get(n.originator_id)
        for n in vault.events.select_notifications(1, 100)
        if n.topic.endswith("AccessAttempt.Recorded")
    ]
    assert (access.allowed, access.undelivered) == (True, "blob-store-unavailable")
    assert vault.consents.consent("r1", consent.id).uses == 0
    assert vault.documents.find(document.id).reuse_count == 0
    blobs.down = False
    assert b"".join(_fetch(vault, document).content) == b"0123456789"
    report = vault.audit.readjudicate()
    assert (report.checked, report.mismatches) == (2, [])


def test_an_upload_while_the_blob_store_is_down_records_nothing() -> None:
    blobs = FlakyBlobs()
    vault, _, _ = _world(blobs)
    before = vault.events.head()
    blobs.down = True
    with pytest.raises(BlobStoreUnavailable):
        vault.documents.submit("r1", [b"scan"], DocumentDetails("id-card", "t"))
    assert vault.events.head() == before
    assert len(blobs.blobs) == 1
