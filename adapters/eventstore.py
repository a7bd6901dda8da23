"""The event store: eventsourcing's application machinery with the vault's mapper, and the
notification log as the read models, the ledger and the audit read it.

Residents are snapshotted: a resident's history grows with every application (its consent,
its notice), and a load the cache cannot serve would otherwise replay all of it. Every
:data:`RESIDENT_SNAPSHOT_EVERY` events, the save that records them also stores the resident
as it now stands (:class:`vault.resident.Resident.Snapshot`, its grade sealed like the
event that recorded it), taken from the aggregate just saved rather than loaded again. A
load then reads the newest snapshot and the events after it in one query
(:class:`SnapshotFirstRepository`): no round trip more than before for any aggregate,
snapshotted or not. A snapshot is only a shortcut: the events stay the record, and the
audit, the read models, the ledger and ``Store.as_of`` read only them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import Any, ClassVar, Protocol, cast, runtime_checkable
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    ProjectorFunction,
    Repository,
)
from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    Notification,
    Recording,
    StoredEvent,
)
from eventsourcing.utils import strtobool

from adapters.mapper import PersonalDataMapper, stored_sealed_personal
from adapters.transcoding import VaultTranscoder, stored_id_text, stored_time_text
from projections.database import LogTable
from vault.ports import DataKeys
from vault.resident import Resident

log = logging.getLogger("civicvault.eventstore")

RESIDENT_SNAPSHOT_EVERY = 20
"""Events between a resident's snapshots: a cold load replays at most this many less one.
A resident's application adds two or three events (its consent filed, its notice), so a
snapshot every seven or eight applications; each is one more row, written in a transaction
of its own once the save's events are committed."""


@runtime_checkable
class SharesItsTable(Protocol):
    """A recorder whose table the read models' statements may read (both of civicvault's:
    the read models are kept in the event store's own database)."""

    def log_table(self) -> LogTable: ...


@runtime_checkable
class LoadsFromSnapshots(Protocol):
    """A recorder that reads an aggregate's newest snapshot and the events after it in one
    query (both of civicvault's)."""

    def select_from_snapshot(
        self, originator_id: UUID, snapshots_table: str
    ) -> tuple[StoredEvent | None, list[StoredEvent]]: ...


@runtime_checkable
class ReadsAtPositions(Protocol):
    """A recorder that reads the notifications at given positions in one query (both of
    civicvault's)."""

    def select_notifications_at(self, positions: Collection[int]) -> Sequence[Notification]: ...


class VaultApplication(Application[UUID]):
    """The library's application, built on a given infrastructure factory, sealing each
    event's personal fields with its owner's key (:class:`PersonalDataMapper`)."""

    name = "Vault"
    mapper: PersonalDataMapper
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Resident: RESIDENT_SNAPSHOT_EVERY}

    def __init__(self, factory: InfrastructureFactory[Any], keys: DataKeys) -> None:
        # Residents are snapshotted (the library makes the snapshot store only if told).
        factory.env[factory.IS_SNAPSHOTTING_ENABLED] = "y"
        self._factory = factory
        self._keys = keys
        self.on_recorded: list[Callable[[int], None]] = []
        """Called with the number of events each save appended (for metrics)."""
        super().__init__(env=factory.env.copy())

    def construct_factory(self, env: Any) -> InfrastructureFactory[Any]:
        return self._factory

    def construct_transcoder(self) -> VaultTranscoder:
        transcoder = VaultTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_mapper(self) -> PersonalDataMapper:
        return PersonalDataMapper(
            transcoder=self.construct_transcoder(),
            keys=self._keys,
            compressor=self.factory.compressor(),
            cipher=self.factory.cipher(),
        )

    def construct_repository(self) -> Repository[UUID]:
        """The library's repository, loading from snapshots in one query."""
        maxsize = self.env.get(self.AGGREGATE_CACHE_MAXSIZE)
        return SnapshotFirstRepository(
            event_store=self.events,
            snapshot_store=self.snapshots,
            cache_maxsize=int(maxsize) if maxsize else None,
            fastforward=strtobool(self.env.get(self.AGGREGATE_CACHE_FASTFORWARD, "y")),
            fastforward_skipping=strtobool(
                self.env.get(self.AGGREGATE_CACHE_FASTFORWARD_SKIPPING, "n")
            ),
            deepcopy_from_cache=strtobool(self.env.get(self.DEEPCOPY_FROM_AGGREGATE_CACHE, "y")),
        )

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """The library's save, with the vault's own aggregates and events told apart by
        their classes. The library tells them apart by ``isinstance`` against two
        runtime-checkable protocols, which inspects every attribute of the protocol on every
        call: half a millisecond for a fetch's six objects, on the thread that records
        every fetch. Anything else still goes the library's way."""
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, DomainEvent):
                processing.events.append(obj)
            elif isinstance(obj, Aggregate):
                processing.events.extend(obj.collect_events())
                processing.aggregates[obj.id] = obj
            else:
                processing.collect_events(obj)
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        self.notify(processing.events)  # the library's deprecated hook, as its save calls it
        return recordings

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshot each aggregate of a snapshotted kind whose events just saved reached a
        multiple of its interval, from the aggregate saved (the library loads it again).
        The events are committed by now: a snapshot that cannot be stored is logged, not
        raised, and the next multiple tries again."""
        if self.snapshots is None:
            return
        snapshotted = [
            (aggregate_id, aggregate, every)
            for aggregate_id, aggregate in processing_event.aggregates.items()
            if (every := self.snapshotting_intervals.get(type(aggregate))) is not None
        ]
        if not snapshotted:  # most saves (every fetch's): nothing to count
            return
        saved = Counter(event.originator_id for event in processing_event.events)
        snapshots = [
            cast(Any, type(aggregate)).Snapshot.take(aggregate)
            for aggregate_id, aggregate, every in snapshotted
            if aggregate.version // every > (aggregate.version - saved[aggregate_id]) // every
        ]
        if not snapshots:
            return
        try:
            self.snapshots.put(snapshots)
        except Exception:
            log.warning("snapshots not stored (the events are)", exc_info=True)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        for observer in self.on_recorded:
            observer(len(recordings))

    def event_log(self) -> RecordedLog:
        """The notification log, as :class:`vault.ports.EventLog`."""
        return RecordedLog(self.recorder, self.mapper)

    def log_table(self) -> LogTable:
        """Where the recorder keeps the log, for the read models' statements."""
        if not isinstance(self.recorder, SharesItsTable):
            raise TypeError(f"{type(self.recorder).__name__} does not share its table")
        return self.recorder.log_table()

    def notify_channel(self) -> str | None:
        """The channel the recorder notifies on each write (PostgreSQL), if any."""
        channel: str | None = getattr(self.recorder, "channel_name", None)
        return channel


class SnapshotFirstRepository(Repository[UUID]):
    """The library's repository, except that an aggregate the cache lacks is read with its
    newest snapshot (if any) and the events after it in one query, where the library asks
    for the snapshot and then for the events: a round trip more for every cold load on
    PostgreSQL, snapshot or none."""

    def _reconstruct_aggregate(
        self,
        aggregate_id: UUID,
        version: int | None,
        projector_func: ProjectorFunction[Any, Any],
    ) -> Any:
        recorder = self.event_store.recorder
        snapshots = self.snapshot_store
        if version is not None or snapshots is None or not isinstance(recorder, LoadsFromSnapshots):
            return super()._reconstruct_aggregate(aggregate_id, version, projector_func)
        table: str = getattr(snapshots.recorder, "events_table_name")  # noqa: B009
        snapshot, events = recorder.select_from_snapshot(aggregate_id, table)
        stored = [snapshot, *events] if snapshot is not None else events
        mapper = self.event_store.mapper
        to_events = getattr(mapper, "to_domain_events", None)  # the vault's: keys in one go
        domain = to_events(stored) if to_events else [mapper.to_domain_event(s) for s in stored]
        aggregate = projector_func(None, domain)
        if aggregate is None:
            raise AggregateNotFoundError(f"Aggregate {aggregate_id!r} not found.")
        return aggregate


class RecordedLog:
    """The notification log of an application (:class:`vault.ports.EventLog`)."""

    def __init__(self, recorder: ApplicationRecorder, mapper: PersonalDataMapper) -> None:
        self._recorder = recorder
        self._mapper = mapper

    def head(self) -> int:
        return self._recorder.max_notification_id() or 0

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
    ) -> Sequence[Notification]:
        return self._recorder.select_notifications(start, limit, stop=stop, topics=topics)

    def select_notifications_at(self, positions: Collection[int]) -> Sequence[Notification]:
        if not isinstance(self._recorder, ReadsAtPositions):
            raise TypeError(f"{type(self._recorder).__name__} cannot read by position")
        return self._recorder.select_notifications_at(positions)

    def decode(
        self, notifications: Sequence[Notification], *, open_personal: bool = True
    ) -> list[Any]:
        return self._mapper.to_domain_events(notifications, open_personal=open_personal)

    def stored_states(
        self,
        notifications: Sequence[Notification],
        *,
        ids: Collection[str] = (),
        times: Collection[str] = (),
    ) -> list[dict[str, Any] | None]:
        states = self._mapper.to_stored_states(notifications)
        for state in states:
            if state is None:
                continue
            for name in ids:
                state[name] = stored_id_text(state[name])
            for name in times:
                state[name] = stored_time_text(state[name])
            state["personal"] = stored_sealed_personal(state)
        return states
