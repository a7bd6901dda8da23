"""The event store as the services use it: aggregates loaded by type, saved with retries on
a concurrent write, and kept warm in this process's cache."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from itertools import takewhile
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

    def get(self, kind: type[A], aggregate_id: UUID, missing: type[VaultError]) -> A:
        """The aggregate of that id, if it is a ``kind``; else ``missing`` is raised."""
        found = self.find(aggregate_id)
        if not isinstance(found, kind):
            raise missing(f"{kind.__name__.lower()} {aggregate_id} not found")
        return found

    def find(self, aggregate_id: UUID) -> object | None:
        """The aggregate of that id, of whatever kind, or None."""
        try:
            return self._app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

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

    def remember(self, *aggregates: Aggregate) -> None:
        """Put copies of aggregates just saved in this process's cache.

        The library leaves its cache alone on a save when it fast-forwards cached
        aggregates (as here, for several processes on one store), so the next load would
        read back and replay the events this process just wrote. A copy of the saved state
        is a correct start for that fast-forward: anything written since, by any process,
        is still read and applied. Copies, so that what callers hold is never changed by
        a fast-forward."""
        cache = self._app.repository.cache
        if cache is None:
            return
        for aggregate in aggregates:
            cache.put(aggregate.id, deepcopy(aggregate))

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
