"""What every part of the vault's application service shares: wiring, loading, retrying."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from copy import deepcopy
from datetime import datetime
from itertools import takewhile
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Recording

from keys.errors import ResidentKeyShredded
from keys.receipts import ConsentTerms
from vault.consent import Consent
from vault.document import Document
from vault.errors import (
    ConsentNotFound,
    Contention,
    DocumentNotFound,
    ResidentErased,
    ResidentNotFound,
)
from vault.ids import check_resident_id, parse_uuid, resident_aggregate_id
from vault.inputs import check_aware
from vault.personal import PersonalDataMapper
from vault.ports import BlobStore, Clock, DataKeys, SystemClock
from vault.resident import Resident
from vault.transcoding import VaultTranscoder

T = TypeVar("T")
DEFAULT_MAX_DOCUMENT_BYTES = 50 * 1024 * 1024


class ReceiptSigner(Protocol):
    def __call__(self, terms: ConsentTerms) -> str: ...


class VaultBase(Application[UUID]):
    """The event store, the ports, and the helpers the command modules build on."""

    mapper: PersonalDataMapper

    def __init__(
        self,
        *,
        factory: InfrastructureFactory[Any],
        keys: DataKeys,
        blobs: BlobStore,
        sign_receipt: ReceiptSigner,
        clock: Clock | None = None,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        max_attempts: int = 64,
    ) -> None:
        self._factory = factory
        self.keys = keys
        self.blobs = blobs
        self.sign_receipt = sign_receipt
        self.clock = clock or SystemClock()
        self.max_document_bytes = max_document_bytes
        self.max_attempts = max_attempts
        self.on_recorded: list[Callable[[int], None]] = []
        """Called with the number of events each save appended (for metrics)."""
        self._position: ContextVar[int | None] = ContextVar("vault_position", default=None)
        """Where the latest write of the current context landed: a context, not a thread,
        because a server's threads serve one request after another, each in a copy of
        its request's context, and a request that wrote nothing must not answer with
        the position of another's write."""
        super().__init__(env=factory.env.copy())

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        if recordings:
            self._position.set(max(r.notification.id for r in recordings))
        for observer in self.on_recorded:
            observer(len(recordings))

    def take_position(self) -> int | None:
        """Where in the log the latest write made in this context landed (for
        read-your-writes), once: None if it has written nothing since it last asked."""
        position = self._position.get()
        self._position.set(None)
        return position

    def construct_factory(self, env: Any) -> InfrastructureFactory[Any]:
        return self._factory

    def construct_transcoder(self) -> VaultTranscoder:
        transcoder = VaultTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_mapper(self) -> PersonalDataMapper:
        return PersonalDataMapper(
            transcoder=self.construct_transcoder(),
            keys=self.keys,
            compressor=self.factory.compressor(),
            cipher=self.factory.cipher(),
        )

    def resident(self, resident_id: str) -> Resident:
        """A registered resident (erased ones included)."""
        check_resident_id(resident_id)
        try:
            resident: Resident = self.repository.get(resident_aggregate_id(resident_id))
        except AggregateNotFoundError:
            raise ResidentNotFound(f"resident {resident_id} is not registered") from None
        return resident

    def as_of(self, aggregate_id: UUID | str, at: datetime) -> Aggregate | None:
        """Any aggregate as it stood at ``at`` (None if it did not exist yet)."""
        check_aware("at", at)
        events = cast(
            "Iterable[Aggregate.Event]", self.events.get(parse_uuid("id", aggregate_id))
        )
        state: Aggregate | None = None
        for event in takewhile(lambda e: e.timestamp <= at, events):
            state = event.mutate(state)
        return state

    def _active_resident(self, resident_id: str) -> Resident:
        resident = self.resident(resident_id)
        if resident.is_erased:
            raise ResidentErased(f"resident {resident_id} was erased")
        return resident

    def _document(self, document_id: UUID | str) -> Document:
        return self._load(Document, parse_uuid("document_id", document_id), DocumentNotFound)

    def _consent(self, consent_id: UUID | str) -> Consent:
        return self._load(Consent, parse_uuid("consent_id", consent_id), ConsentNotFound)

    def _load(self, kind: type[T], aggregate_id: UUID, missing: type[Exception]) -> T:
        aggregate: object
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, kind):
            raise missing(f"{kind.__name__.lower()} {aggregate_id} not found")
        return aggregate

    def _remember(self, *aggregates: Aggregate) -> None:
        """Put copies of aggregates just saved in this process's cache.

        The library leaves its cache alone on a save when it fast-forwards cached
        aggregates (as here, for several processes on one store), so the next load would
        read back and replay the events this process just wrote. A copy of the saved state
        is a correct start for that fast-forward: anything written since, by any process,
        is still read and applied. Copies, so that what callers hold is never changed by
        a fast-forward."""
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate in aggregates:
            cache.put(aggregate.id, deepcopy(aggregate))

    def _forget(self, *aggregate_ids: UUID) -> None:
        """Drop aggregates from this process's cache."""
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate_id in aggregate_ids:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run a read-decide-save step, again on a concurrent write, with jittered back-off.

        A resident key shredded under the step (a concurrent erasure) ends it as
        :class:`ResidentErased`.
        """
        for n in range(self.max_attempts):
            try:
                return attempt()
            except IntegrityError:
                time.sleep(random.uniform(0, min(0.05, 0.0005 * 2**n)))  # noqa: S311
            except ResidentKeyShredded as e:
                raise ResidentErased(str(e)) from None
        raise Contention("too many concurrent changes; try again")
