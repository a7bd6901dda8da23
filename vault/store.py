"""The event store as the services use it: aggregates loaded by type, saved with retries on
a concurrent write, and kept warm in this process's cache."""

from __future__ import annotations

import contextlib
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby, takewhile
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from keys.errors import ResidentKeyShredded
from vault.errors import Contention, ResidentErased, VaultError
from vault.ids import parse_uuid
from vault.inputs import check_aware

T = TypeVar("T")
A = TypeVar("A")


@dataclass(frozen=True)
class Written(Generic[T]):
    """What a command made, and where in the log its last event landed (None when it
    appended nothing): a client that reads the read models next asks for that position."""

    value: T
    position: int | None


class Store:
    """Loads and saves the vault's aggregates through an eventsourcing application."""

    def __init__(self, application: Application[UUID], *, max_attempts: int = 64) -> None:
        self._app = application
        self.max_attempts = max_attempts
        # The recorders of civicvault's two databases list changes without the events'
        # states (one narrow query); any other recorder, through its notifications.
        self._select_changes: Callable[[int, int], Sequence[tuple[int, Any, int]]] = getattr(
            application.recorder, "select_changes", self._changes_from_notifications
        )

    def head(self) -> int:
        """The log position of the last event recorded (0 for an empty log)."""
        return self._app.recorder.max_notification_id() or 0

    def changes_after(self, position: int, limit: int) -> Sequence[tuple[int, Any, int]]:
        """``(position, aggregate id, version)`` of at most ``limit`` events recorded after
        ``position``, in log order: which aggregates changed, without reading the events."""
        return self._select_changes(position, limit)

    def _changes_from_notifications(
        self, position: int, limit: int
    ) -> list[tuple[int, Any, int]]:
        return [
            (n.id, n.originator_id, n.originator_version)
            for n in self._app.recorder.select_notifications(position + 1, limit)
        ]

    def get(self, kind: type[A], aggregate_id: UUID, missing: type[VaultError]) -> A:
        """The aggregate of that id, if it is a ``kind``; else ``missing`` is raised."""
        found = self.find(aggregate_id)
        if not isinstance(found, kind):
            raise missing(f"{kind.__name__.lower()} {aggregate_id} not found")
        return found

    def find(self, aggregate_id: UUID) -> object | None:
        """The aggregate of that id, of whatever kind, or None."""
        try:
            found: object = self._app.repository.get(aggregate_id, projector_func=_replayed)
        except AggregateNotFoundError:
            return None
        return found

    def find_all(self, aggregate_ids: Iterable[UUID]) -> dict[UUID, object]:
        """The aggregates of these ids, as :meth:`find` gives each (an id with none is
        left out). Where the recorder reads many aggregates' events in one query
        (``select_events_of``: PostgreSQL's, where each query is a round trip), those
        this process's cache lacks are read together (each from its newest snapshot, if
        it has one) and cached as a load caches them; the others are loaded one by one."""
        wanted = list(dict.fromkeys(aggregate_ids))
        together = self._cold(wanted)
        found = self._loaded_together(together) if together else {}
        for aggregate_id in wanted:
            if aggregate_id not in together:
                aggregate = self.find(aggregate_id)
                if aggregate is not None:
                    found[aggregate_id] = aggregate
        return {i: found[i] for i in wanted if i in found}

    def _cold(self, aggregate_ids: list[UUID]) -> list[UUID]:
        """Those of ``aggregate_ids`` to read together: the ones the cache lacks, if the
        recorder can read them in one query and there are two or more."""
        if not hasattr(self._app.recorder, "select_events_of"):
            return []
        cache = self._app.repository.cache
        cold = [i for i in aggregate_ids if cache is None or not _holds(cache, i)]
        return cold if len(cold) > 1 else []

    def _loaded_together(self, aggregate_ids: list[UUID]) -> dict[UUID, object]:
        # Snapshotted aggregates (residents) from their newest snapshot, as a load reads one.
        snapshots = self._app.snapshots
        table = None if snapshots is None else getattr(
            snapshots.recorder, "events_table_name", None
        )
        stored = self._app.recorder.select_events_of(  # type: ignore[attr-defined]
            aggregate_ids, snapshots_table=table
        )
        mapper = self._app.mapper
        to_events = getattr(mapper, "to_domain_events", None)  # the vault's: keys in one go
        events = to_events(stored) if to_events else [mapper.to_domain_event(s) for s in stored]
        repository = self._app.repository
        found: dict[UUID, object] = {}
        for aggregate_id, its_events in groupby(events, key=lambda e: e.originator_id):
            aggregate = _replayed(None, its_events)
            if repository.cache is not None:
                repository.cache.put(aggregate_id, aggregate)
                if repository.deepcopy_from_cache:  # as a load hands it out
                    aggregate = deepcopy(aggregate)
            found[aggregate_id] = aggregate
        return found

    def has_events(self, aggregate_id: UUID) -> bool:
        """Whether anything was ever recorded for that id (read from the store itself)."""
        return bool(self._app.recorder.select_events(aggregate_id, limit=1))

    def save(self, *items: Any) -> int | None:
        """Save the pending events of aggregates (and bare events) in one transaction;
        returns the log position of the last one (None if there were none)."""
        positions = self.record(*items)
        return positions[-1] if positions else None

    def record(self, *items: Any) -> list[int]:
        """:meth:`save`, returning the log position of every event, in order."""
        return [r.notification.id for r in self._app.save(*items)]

    def retrying(self, attempt: Callable[[], T]) -> T:
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

    def forget(self, *aggregate_ids: UUID) -> None:
        """Drop aggregates from this process's cache."""
        cache = self._app.repository.cache
        if cache is None:
            return
        for aggregate_id in aggregate_ids:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def events(self, aggregate_id: UUID | str) -> list[Aggregate.Event]:
        """What happened to an aggregate: its events, oldest first."""
        return list(cast(
            "Iterable[Aggregate.Event]", self._app.events.get(parse_uuid("id", aggregate_id))
        ))

    def as_of(self, aggregate_id: UUID | str, at: datetime) -> Aggregate | None:
        """Any aggregate as it stood at ``at`` (None if it did not exist yet)."""
        check_aware("at", at)
        events = cast(
            "Iterable[Aggregate.Event]", self._app.events.get(parse_uuid("id", aggregate_id))
        )
        state: Aggregate | None = None
        for event in takewhile(lambda e: e.timestamp <= at, events):
            state = event.mutate(state)
        return state

    def close(self) -> None:
        self._app.close()


def _holds(cache: Any, aggregate_id: UUID) -> bool:
    """Whether the repository's cache holds the aggregate (its ``get`` raises if not)."""
    try:
        cache.get(aggregate_id)
    except KeyError:
        return False
    return True


def first_then(first: T, load: Callable[[], T]) -> Callable[[], T]:
    """For a step that :meth:`Store.retrying` runs: ``first`` to its first attempt, ``load()``
    to each later one. What was loaded just before the step serves its first attempt; an
    attempt after a concurrent write (a save that failed on a version) loads afresh."""
    held = [first]
    return lambda: held.pop() if held else load()


def _replayed(state: Any, events: Iterable[Any]) -> Any:
    """Each event applied to the state the one before left: the library's own projector
    does the same, but first checks each event against a runtime-checkable Protocol, an
    ``isinstance`` that cost a tenth of an application's acceptance (every event here is
    an aggregate event the mapper made)."""
    for event in events:
        state = event.mutate(state)
    return state


_ABSENT = object()


class Warm:
    """Aggregates one thread keeps between its steps, brought up to date through the log.

    A store load reads each aggregate's new events (one query each, even when there are
    none). Here, before each step, :meth:`refresh` reads what the log recorded since it
    last looked — positions, ids and versions, one narrow query for all — and drops every
    aggregate held at an older version than the log now has (or held as missing and since
    created). Whatever is still held is then exactly what a load would give at that moment,
    so a step judges on current state with no query per aggregate; anything recorded by any
    thread or process after the refresh is caught, as it would be after a load, by the
    versions the step's save expects.

    The aggregates are the holder's own, changed by its steps: a step that does not end
    saved must :meth:`drop` what it changed. At most ``capacity`` are held, the least
    recently used going first. Dropping an aggregate drops those ``related`` names too
    (a resident's documents and consents: their personal fields are opened with the
    resident's key, so they go when an erasure changes the resident). One thread only:
    there is no lock.
    """

    CHANGES_PAGE = 4096
    """Changes read per query in :meth:`refresh`."""
    MAX_CHANGES = 16 * CHANGES_PAGE
    """More changes than this since the last look: forget everything (cheaper than reading)."""

    def __init__(
        self,
        store: Store,
        capacity: int,
        related: Callable[[object], Iterable[UUID]] = lambda _: (),
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._store = store
        self._capacity = capacity
        self._related = related
        self._held: OrderedDict[UUID, object] = OrderedDict()
        self._seen: int | None = None

    def refresh(self) -> None:
        """Drop what the log changed since the last refresh."""
        if self._seen is None:
            self._seen = self._store.head()
            self._held.clear()
            return
        read = 0
        while True:
            changes = self._store.changes_after(self._seen, self.CHANGES_PAGE)
            for _, aggregate_id, version in changes:
                held = self._held.get(aggregate_id, _ABSENT)
                if held is not _ABSENT and getattr(held, "version", 0) < version:
                    self.drop(aggregate_id)
            if changes:
                self._seen = changes[-1][0]
            read += len(changes)
            if len(changes) < self.CHANGES_PAGE:
                return
            if read >= self.MAX_CHANGES:
                self._seen = None  # the next refresh starts afresh
                self.refresh()
                return

    def get(self, aggregate_id: UUID) -> object | None:
        """The aggregate (None if there is none), held from before or loaded now."""
        held = self._held.get(aggregate_id, _ABSENT)
        if held is _ABSENT:
            held = self._store.find(aggregate_id)
            self._hold(aggregate_id, held)
        else:
            self._held.move_to_end(aggregate_id)
        return held

    def load(self, aggregate_ids: Iterable[UUID]) -> None:
        """Hold these aggregates, those not held yet read together
        (:meth:`Store.find_all`): what a step is about to :meth:`get`, at the cost of one
        round trip instead of one each."""
        missing = [i for i in dict.fromkeys(aggregate_ids) if i not in self._held]
        if not missing:
            return
        found = self._store.find_all(missing)
        for aggregate_id in missing:
            self._hold(aggregate_id, found.get(aggregate_id))

    def _hold(self, aggregate_id: UUID, aggregate: object | None) -> None:
        self._held[aggregate_id] = aggregate
        if len(self._held) > self._capacity:
            # With those related to it: a resident's documents are never held without
            # the resident, whose change (an erasure) drops them.
            self.drop(next(iter(self._held)))

    def drop(self, *aggregate_ids: UUID) -> None:
        """Forget these aggregates and those related to them (a step changed them and did
        not save, or the log has newer versions)."""
        for aggregate_id in aggregate_ids:
            held = self._held.pop(aggregate_id, None)
            if held is not None:
                for related in self._related(held):
                    self._held.pop(related, None)

    def clear(self) -> None:
        """Forget everything (nothing personal is held while the holder is idle)."""
        self._held.clear()
        self._seen = None
