"""Blob first, event second: a failed upload leaves no blob, and no event ever lacks its blob."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from tests.support import MemoryBlobStore, memory_vault
from vault.inputs import DocumentDetails

ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证")


def test_an_error_after_the_commit_keeps_the_blob() -> None:
    blobs = MemoryBlobStore()
    vault = memory_vault(blobs=blobs)
    vault.register_resident("r1")
    real_save = vault.save

    def save_then_lose_the_connection(*objs: Any, **kwargs: Any) -> Any:
        real_save(*objs, **kwargs)
        raise OperationalError("connection lost after commit")

    vault.save = save_then_lose_the_connection  # type: ignore[method-assign]
    with pytest.raises(OperationalError):
        vault.submit_document("r1", [b"bytes"], ID_CARD)
    vault.save = real_save  # type: ignore[method-assign]
    [document] = vault.library("r1")
    assert blobs.exists(document.blob_key)
    assert b"".join(vault.read_document("r1", document.id)) == b"bytes"


def test_an_error_before_the_commit_removes_the_blob() -> None:
    blobs = MemoryBlobStore()
    vault = memory_vault(blobs=blobs)
    vault.register_resident("r1")

    def fail(*objs: Any, **kwargs: Any) -> Any:
        raise OperationalError("database went away")

    vault.save = fail  # type: ignore[method-assign]
    with pytest.raises(OperationalError):
        vault.submit_document("r1", [b"bytes"], ID_CARD)
    assert blobs.blobs == {}


def test_a_failing_blob_store_writes_no_event() -> None:
    class Broken(MemoryBlobStore):
        def put(self, key: str, chunks: Any) -> int:
            raise OSError("disk full")

    vault = memory_vault(blobs=Broken())
    vault.register_resident("r1")
    events = vault.recorder.max_notification_id()
    with pytest.raises(OSError, match="disk full"):
        vault.submit_document("r1", [b"bytes"], ID_CARD)
    assert vault.recorder.max_notification_id() == events
