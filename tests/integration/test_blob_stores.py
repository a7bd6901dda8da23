"""The blob store contract, on the local directory store and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.blobs_local import InvalidBlobKey, LocalBlobStore
from adapters.settings import Settings
from adapters.wiring import open_services
from keys.master import MasterKey
from tests.support import MovableClock, read_document
from vault.inputs import DocumentDetails
from vault.ports import BlobNotFound, BlobStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    from adapters.blobs_s3 import PART_BYTES, S3BlobStore

    endpoint = request.getfixturevalue("s3_endpoint")
    assert PART_BYTES >= 5 * 1024 * 1024
    return S3BlobStore.connect(
        endpoint, "any", "any", f"test-{uuid.uuid4().hex[:12]}", secure=False
    )


def _pieces(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = os.urandom(min(size, total - sent))
        sent += len(piece)
        yield piece


def test_put_then_get_returns_the_same_bytes(store: BlobStore) -> None:
    assert store.put("documents/ab/one", [b"hello ", b"world"]) == 11
    assert b"".join(store.get("documents/ab/one")) == b"hello world"
    assert store.exists("documents/ab/one")


def test_large_blob_goes_up_in_parts_and_streams_back(store: BlobStore) -> None:
    data = b"".join(_pieces(37 * 1024 * 1024))
    chunks = [data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024)]
    assert store.put("documents/cd/large", iter(chunks)) == len(data)
    received = 0
    for piece in store.get("documents/cd/large"):
        assert piece == data[received : received + len(piece)]
        received += len(piece)
    assert received == len(data)


def test_missing_blob_raises_before_streaming(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        store.get("documents/ef/missing")
    assert not store.exists("documents/ef/missing")


def test_delete_is_idempotent(store: BlobStore) -> None:
    store.put("documents/gh/gone", [b"x"])
    store.delete("documents/gh/gone")
    store.delete("documents/gh/gone")
    assert not store.exists("documents/gh/gone")


def test_list_shows_every_blob_with_size_and_time(store: BlobStore) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    store.put("documents/aa/1", [b"1"])
    store.put("documents/bb/22", [b"22"])
    listed = {b.key: b for b in store.list()}
    assert set(listed) == {"documents/aa/1", "documents/bb/22"}
    assert listed["documents/bb/22"].size == 2
    assert listed["documents/aa/1"].modified_at > before


def test_a_failed_write_leaves_nothing_behind(store: BlobStore) -> None:
    def failing() -> Iterator[bytes]:
        yield from _pieces(20 * 1024 * 1024)  # past one S3 part, so a multipart upload aborts
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        store.put("documents/ij/partial", failing())
    assert not store.exists("documents/ij/partial")
    assert list(store.list()) == []


def test_a_failed_overwrite_keeps_the_old_blob(store: BlobStore) -> None:
    store.put("documents/kl/kept", [b"original"])

    def failing() -> Iterator[bytes]:
        yield b"replacement"
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        store.put("documents/kl/kept", failing())
    assert b"".join(store.get("documents/kl/kept")) == b"original"


@pytest.mark.parametrize(
    "key", ["../escape", "documents/../../etc/passwd", "/absolute", "", "a//b", ".hidden", "a/./b"]
)
def test_local_store_refuses_keys_that_could_leave_it(tmp_path: Path, key: str) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(InvalidBlobKey):
        store.put(key, [b"x"])
    with pytest.raises(InvalidBlobKey):
        store.get(key)
    assert not (tmp_path / "escape").exists()


def test_local_store_follows_no_symlink_out_of_its_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "blobs" / "link").symlink_to(outside)
    with pytest.raises(InvalidBlobKey):
        store.put("link/file", [b"x"])
    assert list(outside.iterdir()) == []


def test_local_store_reads_no_file_through_a_link_in_its_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("documents/ab/real", [b"inside"])
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside")
    (tmp_path / "blobs" / "documents" / "ab" / "planted").symlink_to(secret)
    assert b"".join(store.get("documents/ab/real")) == b"inside"  # its folder now known
    with pytest.raises(InvalidBlobKey, match="link"):
        store.get("documents/ab/planted")
    (tmp_path / "blobs" / "documents" / "cd").symlink_to(tmp_path)
    with pytest.raises(InvalidBlobKey, match="leaves"):
        store.get("documents/cd/secret")


def test_the_vault_keeps_documents_on_s3(s3_endpoint: str, tmp_path: Path) -> None:
    clock = MovableClock()
    services = open_services(
        Settings(
            data_dir=tmp_path,
            master_key=MasterKey.generate().to_base64(),
            s3_endpoint=s3_endpoint,
            s3_access_key="any",
            s3_secret_key="any",
            s3_bucket=f"vault-{uuid.uuid4().hex[:12]}",
            s3_secure=False,
        ),
        clock=clock,
    )
    try:
        content = b"".join(_pieces(3 * 1024 * 1024))
        document = services.documents.submit(
            "r1", io.BytesIO(content), DocumentDetails("diploma", "毕业证书")
        ).value
        assert not (tmp_path / "blobs").exists()
        assert b"".join(read_document(services, "r1", document.id)) == content
        services.blobs.put("documents/zz/orphan", [b"left behind"])
        clock.advance(timedelta(days=2))
        report = services.documents.collect_garbage(timedelta(days=1))
        assert (report.deleted, report.referenced) == (1, 1)
        assert services.blobs.exists(document.blob_key)
    finally:
        services.close()
