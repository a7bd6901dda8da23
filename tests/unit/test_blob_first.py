"""Blob first, event second: a failed upload leaves no blob, and no event ever lacks its blob."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from tests.support import MemoryBlobStore, library, memory_vault, read_document
from vault.inputs import DocumentDetails

ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证")


def test_an_error_after_the_commit_keeps_the_blob() -> None:
    blobs = MemoryBlobStore()
    vault = memory_vault(blobs=blobs)
    vault.residents.register("r1")
    real_save = vault.store.save

    def save_then_lose_the_connection(*objs: Any, **kwargs: Any) -> Any:
        real_save(*objs, **kwargs)
        raise OperationalError("connection lost after commit")

    vault.store.save = save_then_lose_the_connection  # type: ignore[method-assign]
    with pytest.raises(OperationalError):
        vault.documents.submit("r1", [b"bytes"], ID_CARD)
    vault.store.save = real_save  # type: ignore[method-assign]
    [document] = library(vault, "r1")
    assert blobs.exists(document.blob_key)
    assert b"".join(read_document(vault, "r1", document.id)) == b"bytes"


def test_an_error_before_the_commit_removes_the_blob() -> None:
    blobs = MemoryBlobStore()
    vault = memory_vault(blobs=blobs)
    vault.residents.register("r1")

    def fail(*objs: Any, **kwargs: Any) -> Any:
        raise OperationalError("database went away")

    vault.store.save = fail  # type: ignore[method-assign]
    with pytest.raises(OperationalError):
        vault.documents.submit("r1", [b"bytes"], ID_CARD)
    assert blobs.blobs == {}


def test_a_failing_blob_store_writes_no_event() -> None:
    class Broken(MemoryBlobStore):
        def put(self, key: str, chunks: Any) -> int:
            raise OSError("disk full")

    vault = memory_vault(blobs=Broken())
    vault.residents.register("r1")
    events = vault.events.head()
    with pytest.raises(OSError, match="disk full"):
        vault.documents.submit("r1", [b"bytes"], ID_CARD)
    assert vault.events.head() == events
