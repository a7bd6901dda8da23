"""Test doubles standing in for servers in unit tests (the real ones are tested in integration)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from adapters.keytable import MemoryKeyTable
from keys.master import MasterKey, MasterKeys
from keys.receipts import ConsentTerms, sign_consent_receipt
from keys.resident_keys import ResidentKeys
from keys.signing import SigningKeys
from vault.app import Vault
from vault.ports import BlobInfo, BlobNotFound


class MovableClock:
    """Business time the test controls."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


class MemoryBlobStore:
    """Blobs in a dict; writes land only when the whole stream was read."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, datetime]] = {}

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        data = b"".join(chunks)
        self.blobs[key] = (data, datetime.now(UTC))
        return len(data)

    def get(self, key: str) -> Iterator[bytes]:
        if key not in self.blobs:
            raise BlobNotFound(key)
        data = self.blobs[key][0]
        return iter([data[i : i + 65536] for i in range(0, len(data), 65536)] or [b""])

    def exists(self, key: str) -> bool:
        return key in self.blobs

    def delete(self, key: str) -> None:
        self.blobs.pop(key, None)

    def list(self) -> Iterator[BlobInfo]:
        for key, (data, at) in list(self.blobs.items()):
            yield BlobInfo(key, len(data), at)


def memory_vault(clock: MovableClock | None = None, **overrides: Any) -> Vault:
    """A vault on eventsourcing's in-memory store, a memory key table and memory blobs."""
    factory = InfrastructureFactory.construct(
        Environment("Vault", {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    )
    table = MemoryKeyTable()
    master = MasterKeys(MasterKey.generate())
    signing = SigningKeys(table, master)

    def sign(terms: ConsentTerms) -> str:
        return sign_consent_receipt(signing.current("receipts"), terms)

    vault = Vault(
        factory=factory,
        keys=ResidentKeys(table, master),
        blobs=overrides.pop("blobs", MemoryBlobStore()),
        sign_receipt=sign,
        clock=clock or MovableClock(),
        **overrides,
    )
    vault.signing = signing  # type: ignore[attr-defined]
    return vault
