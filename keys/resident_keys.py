"""Per-resident data keys: created at registration, destroyed at erasure."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import ResidentKeyShredded, UnknownResidentKey
from keys.master import MasterKey, MasterKeys
from keys.secrets import unwrap_key, wrap_key
from keys.store import KeyKind, KeyTable, WrappedResidentKey, wrap_context


class ResidentKeys:
    """Each resident's data key, wrapped by the master key in a :class:`KeyTable`.

    Unwrapped keys are cached in memory for ``cache_seconds`` so that replaying
    many events does not hit the table for each one; that a key was shredded is
    cached for good, since a shredded key never comes back. Once :meth:`shred` returns,
    this process neither holds nor caches the key again (a read that raced the
    shred may still finish, but is not cached); other processes sharing the
    table notice within ``cache_seconds``.
    """

    def __init__(
        self,
        table: KeyTable,
        master: MasterKeys,
        *,
        cache_seconds: float = 2.0,
        cache_size: int = 4096,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._master = master
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._monotonic = monotonic
        # resident id -> (when read, key), or (when read, None) once shredded
        self._cache: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._shreds = 0  # bumped around every shred, so a racing read is not cached

    def create(self, resident_id: str) -> None:
        """Give a resident a data key, unless they already have (or had) one."""
        if self._table.resident_key(resident_id) is not None:
            return
        wrapped, master_id = self._master.wrap(
            AESGCM.generate_key(bit_length=256), context=_resident_context(resident_id)
        )
        self._table.add_resident_key(resident_id, wrapped, master_id, datetime.now(UTC))

    def create_many(self, resident_ids: Iterable[str]) -> None:
        """Give many residents data keys in one transaction (those who have one keep it)."""
        now = datetime.now(UTC)
        rows = []
        for resident_id in resident_ids:
            wrapped, master_id = self._master.wrap(
                AESGCM.generate_key(bit_length=256), context=_resident_context(resident_id)
            )
            rows.append(WrappedResidentKey(resident_id, wrapped, master_id, now, None))
        if rows:
            self._table.add_resident_keys(rows)
            # Cache what the table now holds (a concurrent creator's key may have won).
            self.prefetch([row.resident_id for row in rows])

    def data_key(self, resident_id: str) -> bytes:
        """The resident's data key; raises if it was shredded or never created."""
        now = self._monotonic()
        with self._lock:
            cached = self._cached(resident_id, now)
            if cached is not None:
                self._cache.move_to_end(resident_id)
                key = cached[1]
                if key is None:
                    raise ResidentKeyShredded(f"resident {resident_id} was erased")
                return key
            shreds = self._shreds
        row = self._table.resident_key(resident_id)
        if row is None:
            raise UnknownResidentKey(f"resident {resident_id} has no data key")
        if row.wrapped is None:
            self._remember({resident_id: None}, now, shreds)
            raise ResidentKeyShredded(f"resident {resident_id} was erased")
        key = self._master.unwrap(
            row.wrapped, row.master_key_id, context=_resident_context(resident_id)
        )
        self._remember({resident_id: key}, now, shreds)
        return key

    def _cached(self, resident_id: str, now: float) -> tuple[float, bytes | None] | None:
        """The cache's entry if it still holds (a shredded mark always does); under the lock."""
        cached = self._cache.get(resident_id)
        if cached is None or (cached[1] is not None and now - cached[0] >= self._cache_seconds):
            return None
        return cached

    def prefetch(self, resident_ids: Iterable[str]) -> None:
        """Read, in one query, the keys of these residents that the cache lacks,
        ahead of sealing or opening."""
        self.data_keys(resident_ids)

    def data_keys(self, resident_ids: Iterable[str]) -> dict[str, bytes | None]:
        """These residents' data keys, with at most one query for those the cache lacks:
        None for a resident erased or never registered (where :meth:`data_key` raises, and
        asks the table again each time about one never registered)."""
        now = self._monotonic()
        keys: dict[str, bytes | None] = {}
        missing: list[str] = []
        with self._lock:
            shreds = self._shreds
            for resident_id in set(resident_ids):
                cached = self._cached(resident_id, now)
                if cached is None:
                    missing.append(resident_id)
                else:
                    keys[resident_id] = cached[1]
        if not missing:
            return keys
        read: dict[str, bytes | None] = {
            row.resident_id: None
            if row.wrapped is None
            else self._master.unwrap(
                row.wrapped, row.master_key_id, context=_resident_context(row.resident_id)
            )
            for row in self._table.resident_keys(missing)
        }
        self._remember(read, now, shreds)
        keys.update(dict.fromkeys(missing))  # never registered, unless read just now
        keys.update(read)
        return keys

    def _remember(self, keys: dict[str, bytes | None], now: float, shreds: int) -> None:
        """Cache keys read while no shred happened (a read racing a shred is not kept)."""
        with self._lock:
            if self._shreds != shreds:
                return
            for resident_id, key in keys.items():
                self._cache[resident_id] = (now, key)
                self._cache.move_to_end(resident_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def is_shredded(self, resident_id: str) -> bool:
        row = self._table.resident_key(resident_id)
        return row is not None and row.wrapped is None

    def shred(self, resident_id: str) -> None:
        """Destroy the resident's data key for good (crypto-shredding)."""
        with self._lock:
            self._shreds += 1
            self._cache.pop(resident_id, None)
        self._table.shred_resident_key(resident_id, datetime.now(UTC))
        with self._lock:
            self._shreds += 1
            self._cache[resident_id] = (self._monotonic(), None)

    def wrap_document_key(self, resident_id: str, document_id: str, document_key: bytes) -> bytes:
        """Wrap a document's key under its owner's data key."""
        return wrap_key(
            self.data_key(resident_id),
            document_key,
            context=_document_context(resident_id, document_id),
        )

    def unwrap_document_key(self, resident_id: str, document_id: str, wrapped: bytes) -> bytes:
        return unwrap_key(
            self.data_key(resident_id),
            wrapped,
            context=_document_context(resident_id, document_id),
        )


def rotate_master(
    table: KeyTable,
    ring: MasterKeys,
    target: MasterKey,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-wrap every resident and signing key not yet under ``target``, in one transaction.

    ``ring`` must hold every master key the keys are wrapped by now. Document
    keys are wrapped by resident keys, so documents are not touched.
    """
    keys = MasterKeys(target, (ring.current, *ring.previous))

    def rewrap(kind: KeyKind, owner: str, wrapped: bytes, master_id: str) -> tuple[bytes, str]:
        context = wrap_context(kind, owner)
        return keys.wrap(keys.unwrap(wrapped, master_id, context=context), context=context)

    return table.rewrap_all(rewrap, except_under=target.key_id, progress=progress)


def _resident_context(resident_id: str) -> bytes:
    return wrap_context("resident", resident_id)


def _document_context(resident_id: str, document_id: str) -> bytes:
    return f"document:{document_id}|resident:{resident_id}".encode()
