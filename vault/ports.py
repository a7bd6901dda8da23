"""The small interfaces the vault needs from the outside; adapters implement them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class BlobNotFound(Exception):
    """No blob is stored under that key."""


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    modified_at: datetime


class BlobStore(Protocol):
    """Stores sealed document bytes under opaque keys. Writes are all-or-nothing."""

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store the concatenated chunks durably under ``key``; returns the byte count."""
        ...

    def get(self, key: str) -> Iterator[bytes]:
        """Stream the blob's bytes; raises :class:`BlobNotFound` before yielding if absent."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the blob; removing an absent blob is not an error."""
        ...

    def list(self) -> Iterator[BlobInfo]:
        """Every stored blob, in no particular order."""
        ...


class DataKeys(Protocol):
    """Per-resident keys (see ``keys.resident_keys.ResidentKeys``)."""

    def create(self, resident_id: str) -> None: ...

    def create_many(self, resident_ids: Iterable[str]) -> None: ...

    def prefetch(self, resident_ids: Iterable[str]) -> None: ...

    def data_keys(self, resident_ids: Iterable[str]) -> dict[str, bytes | None]: ...

    def data_key(self, resident_id: str) -> bytes: ...

    def shred(self, resident_id: str) -> None: ...

    def wrap_document_key(
        self, resident_id: str, document_id: str, document_key: bytes
    ) -> bytes: ...

    def unwrap_document_key(self, resident_id: str, document_id: str, wrapped: bytes) -> bytes: ...


class Clock(Protocol):
    """Business time: consent windows, expiry and grade effectiveness are judged by it."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
