"""Blob store on any S3-compatible server (MinIO in production) through the ``minio`` SDK.

A server that cannot be reached, or answers that it failed, is
:class:`~vault.errors.BlobStoreUnavailable` (a 503 naming the blob store), after a couple
of quick retries: the SDK's own defaults would wait up to five minutes to connect.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

import certifi
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error, ServerError
from urllib3.util import Retry, Timeout

from vault.errors import BlobStoreUnavailable
from vault.ports import BlobInfo, BlobNotFound

PART_BYTES = 16 * 1024 * 1024
READ_BYTES = 1024 * 1024  # sealed chunks span piece ends rarely, so few get copied
CONNECT_SECONDS = 5.0
READ_SECONDS = 60.0
_MISSING = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
_FAILED = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"}


@contextmanager
def _reachable(what: str) -> Iterator[None]:
    """Turn the blob store's failures (not its answers) into BlobStoreUnavailable."""
    try:
        yield
    except S3Error as e:
        if e.code in _FAILED:
            raise BlobStoreUnavailable(f"the blob store failed to {what}: {e.code}") from None
        raise
    except (ServerError, urllib3.exceptions.HTTPError, OSError) as e:
        raise BlobStoreUnavailable(
            f"the blob store could not be reached to {what} ({type(e).__name__})"
        ) from None
    except MinioException as e:
        raise BlobStoreUnavailable(f"the blob store failed to {what}: {e}") from None


class S3BlobStore:
    """Blobs as objects in one bucket; large objects go up in multipart, aborted on failure."""

    def __init__(self, client: Minio, bucket: str, *, part_bytes: int = PART_BYTES) -> None:
        self.client = client
        self.bucket = bucket
        self.part_bytes = part_bytes
        if not client.bucket_exists(bucket):
            try:
                client.make_bucket(bucket)
            except S3Error as e:
                if e.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    @classmethod
    def connect(
        cls, endpoint: str, access_key: str, secret_key: str, bucket: str, *, secure: bool
    ) -> S3BlobStore:
        http = urllib3.PoolManager(
            timeout=Timeout(connect=CONNECT_SECONDS, read=READ_SECONDS),
            maxsize=32,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
            http_client=http,
        )
        return cls(client, bucket)

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        reader = _IterableReader(chunks)
        with _reachable("store a document"):
            self._put(key, reader)
        return reader.consumed

    def _put(self, key: str, reader: _IterableReader) -> None:
        self.client.put_object(
            self.bucket,
            key,
            cast(BinaryIO, reader),  # minio only calls read(n)
            length=-1,
            part_size=self.part_bytes,
            content_type="application/octet-stream",
        )

    def get(self, key: str) -> Iterator[bytes]:
        try:
            with _reachable("read a document"):
                response = self.client.get_object(self.bucket, key)
        except S3Error as e:
            if e.code in _MISSING:
                raise BlobNotFound(key) from None
            raise
        return _stream_and_release(response)

    def exists(self, key: str) -> bool:
        try:
            with _reachable("look for a document"):
                self.client.stat_object(self.bucket, key)
        except S3Error as e:
            if e.code in _MISSING:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        with _reachable("delete a document"):
            self.client.remove_object(self.bucket, key)

    def list(self) -> Iterator[BlobInfo]:
        with _reachable("list the documents"):
            for obj in self.client.list_objects(self.bucket, recursive=True):
                if obj.is_dir or obj.object_name is None:
                    continue
                modified = obj.last_modified or datetime.now(UTC)
                yield BlobInfo(key=obj.object_name, size=obj.size or 0, modified_at=modified)



class _IterableReader:
    """Presents an iterable of byte chunks as a ``read(n)`` stream for the SDK."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0 or size >= len(self._buffer):
            out = bytes(self._buffer)
            self._buffer.clear()
        else:
            out = bytes(self._buffer[:size])
            del self._buffer[:size]
        self.consumed += len(out)
        return out


def _stream_and_release(response: Any) -> Iterator[bytes]:
    try:
        with _reachable("read a document"):
            yield from response.stream(READ_BYTES)
    finally:
        response.close()
        response.release_conn()
