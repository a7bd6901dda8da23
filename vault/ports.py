"""The small interfaces the vault needs from the outside; adapters implement them."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from eventsourcing.persistence import Notification

from keys.receipts import ConsentTerms


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


class ReceiptSigner(Protocol):
    """Signs a consent's terms as a receipt the resident keeps (a compact JWS)."""

    def __call__(self, terms: ConsentTerms) -> str: ...


class Notifications(Protocol):
    """The notification log, read a page at a time in order (what the ledger reads)."""

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
    ) -> Sequence[Notification]: ...

    def select_notifications_at(self, positions: Collection[int]) -> Sequence[Notification]:
        """The notifications at these positions (those there are), in log order, in one
        query."""
        ...


class EventLog(Notifications, Protocol):
    """The notification log as folds over the whole history read it: the read models, the
    audit's re-adjudication, garbage collection."""

    def head(self) -> int:
        """The position of the last event recorded (0 for an empty log)."""
        ...

    def decode(
        self, notifications: Sequence[Notification], *, open_personal: bool = True
    ) -> list[Any]:
        """The domain events of these notifications; with ``open_personal=False`` their
        personal fields are left sealed (they read as ``SEALED``, or ``ERASED`` where
        nothing was sealed)."""
        ...

    def stored_states(
        self,
        notifications: Sequence[Notification],
        *,
        ids: Collection[str] = (),
        times: Collection[str] = (),
    ) -> list[dict[str, Any] | None]:
        """Each event's fields as stored, without building the event (most of the cost of
        reading a long log): the fields named in ``ids`` as id text (``str(UUID)``), those in
        ``times`` as the ISO text they were written as, the personal fields still sealed, as
        bytes, under ``"personal"`` (None if none were sealed). None for an event stored at
        an older version of its class (decode it)."""
        ...
