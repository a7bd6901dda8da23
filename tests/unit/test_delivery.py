"""A fetch is charged only when its bytes can go out (issue 15, item 3): a range the
document cannot satisfy, or bytes that cannot be read, leave the attempt recorded and the
consent's use and the document's reuse untouched (or given back)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from tests.support import MemoryBlobStore, MovableClock, memory_vault
from vault.access import AccessAttempt
from vault.errors import AccessDenied, BlobStoreUnavailable, RangeNotSatisfiable
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


def _read_all(document: Any, content: Iterator[bytes]) -> bytes:
    return b"".join(content)


def _submit_reading(vault: Any, document: Any, read: Any = _read_all) -> Any:
    return vault.fetches.submit_reading(
        read, officer="o", resident_id="r1", document_id=document.id, **CIVIL
    )


def test_bytes_read_while_the_fetch_is_committed_are_handed_over_only_after_it() -> None:
    vault, document, consent = _world()
    vault.policies.decision_point()  # the policy published: the one save left is the fetch's
    store = vault.store
    record, committing, commit = store.record, threading.Event(), threading.Event()
    read_at_head: list[int] = []

    def held_record(*items: Any) -> Any:
        committing.set()
        assert commit.wait(10)
        return record(*items)

    def read(document: Any, content: Iterator[bytes]) -> bytes:
        read_at_head.append(vault.events.head())
        return _read_all(document, content)

    store.record = held_record
    try:
        before = vault.events.head()
        future = _submit_reading(vault, document, read)
        assert committing.wait(10)
        deadline = time.monotonic() + 10
        while not read_at_head:  # read while the commit is held
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert read_at_head == [before]
        time.sleep(0.05)
        assert not future.done(), "nothing is handed over before the commit"
        commit.set()
        done = future.result(10)
    finally:
        store.record = record
    assert done.value == b"0123456789"
    assert done.recorded.position > before
    assert vault.consents.consent("r1", consent.id).uses == 1


def test_what_was_read_for_an_attempt_that_did_not_commit_is_closed() -> None:
    vault, document, _ = _world()
    closed: list[bool] = []
    first_closed = threading.Event()
    content = vault.documents.content

    opened: list[Iterator[bytes]] = []  # held here: only a close, not the collector, ends them

    def tracked(document: Any) -> Iterator[bytes]:
        def chunks() -> Iterator[bytes]:
            try:
                yield from content(document)
            finally:
                closed.append(True)
                first_closed.set()
        opened.append(chunks())
        return opened[-1]

    def read_first(document: Any, content: Iterator[bytes]) -> bytes:
        return next(content)  # leaves the content open

    vault.documents.content = tracked
    vault.policies.decision_point()  # the policy published: the saves left are the fetch's
    record, attempts = vault.store.record, []

    def failing_once(*items: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise IntegrityError("a concurrent write")
        return record(*items)

    vault.store.record = failing_once
    done = _submit_reading(vault, document, read_first).result(10)
    assert len(attempts) == 2
    assert done.value == b"0123456789"
    # The first attempt's read is closed; the second's is handed over, open.
    assert first_closed.wait(60)
    assert closed == [True]


def test_a_fetch_read_while_committed_whose_bytes_cannot_be_read_gives_its_use_back() -> None:
    blobs = FlakyBlobs()
    vault, document, consent = _world(blobs)
    blobs.down = True
    with pytest.raises(BlobStoreUnavailable) as failed:
        _submit_reading(vault, document).result(10)
    assert failed.value.position == vault.events.head()  # the give-back's, for read-your-writes
    [access] = [
        vault.application.repository.get(n.originator_id)
        for n in vault.events.select_notifications(1, 100)
        if n.topic.endswith("AccessAttempt.Recorded")
    ]
    assert (access.allowed, access.undelivered) == (True, "blob-store-unavailable")
    assert vault.consents.consent("r1", consent.id).uses == 0
    blobs.down = False
    assert _submit_reading(vault, document).result(10).value == b"0123456789"
    assert vault.audit.readjudicate().mismatches == []


def test_a_denied_fetch_asked_to_be_read_reads_nothing() -> None:
    vault, document, _ = _world()
    read: list[bytes] = []
    with pytest.raises(AccessDenied):
        vault.fetches.submit_reading(
            lambda d, c: read.append(b"".join(c)), officer="o", resident_id="r1",
            document_id=document.id, department="housing", purpose="housing-subsidy",
        ).result(10)
    assert read == []
