"""The event store: eventsourcing's application machinery with the vault's mapper, and the
notification log as the read models, the ledger and the audit read it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    Notification,
    Recording,
)

from adapters.mapper import PersonalDataMapper, stored_sealed_personal
from adapters.transcoding import VaultTranscoder, stored_id_text, stored_time_text
from projections.database import LogTable
from vault.ports import DataKeys


@runtime_checkable
class SharesItsTable(Protocol):
    """A recorder whose table the read models' statements may read (both of civicvault's:
    the read models are kept in the event store's own database)."""

    def log_table(self) -> LogTable: ...


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

    def __init__(self, factory: InfrastructureFactory[Any], keys: DataKeys) -> None:
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
