"""Test doubles standing in for servers in unit tests (the real ones are tested in
integration), and the queries only tests ask of the aggregates themselves."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from adapters.wiring import Core, Services, compose
from keys.master import MasterKey, MasterKeys
from keys.receipts import ConsentTerms, sign_consent_receipt
from keys.resident_keys import ResidentKeys
from keys.signing import SigningKeys
from keys.store import Rewrap, SigningKeyRecord, WrappedResidentKey
from projections.runner import BATCH, REBUILD_BATCH, ViewRunner
from vault.consent import Consent
from vault.document import Document
from vault.judgement import fetchable
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


class MemoryKeyTable:
    """An in-process key table for unit tests on the in-memory event store."""

    def __init__(self) -> None:
        self._residents: dict[str, WrappedResidentKey] = {}
        self._signing: dict[str, SigningKeyRecord] = {}
        self._lock = threading.Lock()

    def add_resident_key(
        self, resident_id: str, wrapped: bytes, master_key_id: str, at: datetime
    ) -> bool:
        return self.add_resident_keys(
            [WrappedResidentKey(resident_id, wrapped, master_key_id, at, None)]
        ) == 1

    def add_resident_keys(self, keys: Sequence[WrappedResidentKey]) -> int:
        with self._lock:
            new = [k for k in keys if k.resident_id not in self._residents]
            self._residents.update((k.resident_id, k) for k in new)
            return len(new)

    def resident_key(self, resident_id: str) -> WrappedResidentKey | None:
        return self._residents.get(resident_id)

    def resident_keys(self, resident_ids: Sequence[str]) -> list[WrappedResidentKey]:
        return [self._residents[r] for r in resident_ids if r in self._residents]

    def shred_resident_key(self, resident_id: str, at: datetime) -> None:
        with self._lock:
            row = self._residents.get(resident_id)
            self._residents[resident_id] = (
                replace(row, wrapped=None, shredded_at=at)
                if row
                else WrappedResidentKey(resident_id, None, "", at, at)
            )

    def add_signing_key(self, record: SigningKeyRecord) -> None:
        with self._lock:
            self._signing[record.kid] = record

    def signing_keys(self, purpose: str) -> list[SigningKeyRecord]:
        rows = [r for r in self._signing.values() if r.purpose == purpose]
        return sorted(rows, key=lambda r: (r.created_at, r.kid))

    def retire_signing_key(self, kid: str, at: datetime) -> None:
        with self._lock:
            if kid in self._signing and self._signing[kid].retired_at is None:
                self._signing[kid] = replace(self._signing[kid], retired_at=at)

    def count_wrapped(self, *, except_under: str | None = None) -> int:
        masters = [r.master_key_id for r in self._residents.values() if r.wrapped is not None]
        masters += [r.master_key_id for r in self._signing.values()]
        return sum(except_under is None or m != except_under for m in masters)

    def rewrap_all(
        self,
        rewrap: Rewrap,
        *,
        except_under: str,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        with self._lock:
            residents = dict(self._residents)
            signing = dict(self._signing)
            done = 0
            for rid, row in residents.items():
                if row.wrapped is None or row.master_key_id == except_under:
                    continue
                wrapped, master_id = rewrap("resident", rid, row.wrapped, row.master_key_id)
                residents[rid] = replace(row, wrapped=wrapped, master_key_id=master_id)
                done += 1
                if progress:
                    progress(done)
            for kid, rec in signing.items():
                if rec.master_key_id == except_under:
                    continue
                wrapped, master_id = rewrap("signing", kid, rec.wrapped_private, rec.master_key_id)
                signing[kid] = replace(rec, wrapped_private=wrapped, master_key_id=master_id)
                done += 1
                if progress:
                    progress(done)
            self._residents, self._signing = residents, signing
            return done


@dataclass
class MemoryVault(Core):
    """The services on eventsourcing's in-memory store, a memory key table and memory
    blobs."""

    signing: SigningKeys


def memory_vault(clock: MovableClock | None = None, **overrides: Any) -> MemoryVault:
    """The services on eventsourcing's in-memory store (``blobs=`` and
    ``max_document_bytes=`` may be given)."""
    factory = InfrastructureFactory.construct(
        Environment("Vault", {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    )
    table = MemoryKeyTable()
    master = MasterKeys(MasterKey.generate())
    signing = SigningKeys(table, master)
    keys = ResidentKeys(table, master)
    blobs = overrides.pop("blobs", MemoryBlobStore())

    def sign(terms: ConsentTerms) -> str:
        return sign_consent_receipt(signing.current("receipts"), terms)

    core = compose(factory, keys, blobs, sign, clock=clock or MovableClock(), **overrides)
    return MemoryVault(**vars(core), signing=signing)


def another_runner(
    services: Services, *, batch: int = BATCH, rebuild_batch: int = REBUILD_BATCH
) -> ViewRunner:
    """A follower of its own over the services' read models (as another process has), with
    the batch sizes given."""
    return ViewRunner(
        services.events,
        services.keys,
        services.view_runner.db,
        services.application.log_table(),
        services.view_runner.wakeups,
        batch=batch,
        rebuild_batch=rebuild_batch,
        now=services.clock.now,
    )


# Queries only tests ask: the product reads these from the read models.


def library(vault: Core, resident_id: str) -> list[Document]:
    """The resident's current documents, newest first, from the aggregates."""
    resident = vault.residents.active(resident_id)
    documents = [vault.documents.find(d) for d in resident.document_ids]
    return sorted(
        (d for d in documents if d.is_active), key=lambda d: d.created_on, reverse=True
    )


def consents_of(vault: Core, resident_id: str) -> list[Consent]:
    """Every consent the resident has given, newest first, from the aggregates."""
    resident = vault.residents.active(resident_id)
    return [vault.consents.consent(resident_id, c) for c in reversed(resident.consent_ids)]


def read_document(vault: Core, resident_id: str, document_id: Any) -> Iterator[bytes]:
    """The bytes of one of the resident's own documents, decrypted as they stream."""
    return vault.documents.content(vault.documents.document(resident_id, document_id))


def fetchable_documents(
    vault: Core, *, officer: str, department: str, resident_id: str, purpose: str
) -> list[Document]:
    """What a department may fetch now for a purpose, judged on the aggregates with the
    rule the listing applies to the read models."""
    resident = vault.residents.active(resident_id)
    consents = [
        vault.consents.consent(resident_id, c)
        for c in resident.consents_for(department, purpose)
    ]
    return list(
        fetchable(
            (vault.documents.find(d) for d in resident.document_ids),
            consents=consents, grade=resident.grade, officer=officer, department=department,
            purpose=purpose, point=vault.policies.decision_point(), now=vault.clock.now(),
        )
    )


class CountingKeyTable(MemoryKeyTable):
    """Records which residents' keys each read asked the table for."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[str]] = []

    def resident_key(self, resident_id: str) -> WrappedResidentKey | None:
        self.reads.append([resident_id])
        return super().resident_key(resident_id)

    def resident_keys(self, resident_ids: Sequence[str]) -> list[WrappedResidentKey]:
        self.reads.append(sorted(resident_ids))
        return super().resident_keys(resident_ids)


def free_port() -> int:
    """A loopback port nothing listens on just now, for a server the tests start."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
