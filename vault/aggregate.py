"""What the vault's aggregates share: their events stamped in order by the business clock,
and copies that cost little.

Every event carries the time the command was given (the ``Clock`` port's, not the
library's wall clock), so that the state as of any time is read by the clock that judged
the commands. Within one aggregate those times never go backwards: a command that read
the time before another process's event on the same aggregate (which then conflicts and
retries), or a process whose clock is behind another's, stamps its event at the time of
the event before it.

The application copies an aggregate each time it hands one out of its cache, so that a
command cannot corrupt the cached state. The generic ``copy.deepcopy`` rebuilds every
``datetime`` and ``UUID`` through ``__reduce_ex__``, which made a copy of a resident cost
a quarter of a millisecond. Those values, like strings, numbers and enum members, are
immutable, so a copy may share them; only containers need copying.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import Aggregate

_SHARED: frozenset[type] = frozenset(
    {str, int, float, bool, bytes, type(None), UUID, datetime, date, time, timedelta, Decimal}
)


def _copied(value: Any, memo: dict[int, Any]) -> Any:
    kind = type(value)
    if kind in _SHARED or isinstance(value, Enum):
        return value
    if kind is list or kind is dict:
        copied = memo.get(id(value))
        if copied is None:
            if kind is list:
                copied = memo[id(value)] = []
                copied.extend(_copied(item, memo) for item in value)
            else:
                copied = memo[id(value)] = {}
                copied.update((_copied(k, memo), _copied(v, memo)) for k, v in value.items())
        return copied
    if kind is tuple and all(type(item) in _SHARED for item in value):
        return value
    return deepcopy(value, memo)


class VaultAggregate(Aggregate):
    """An aggregate whose events' times never go back, copied cheaply."""

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """Record an event at the time given (``timestamp``), or at the time of the event
        before it, if that is later."""
        at = kwargs.get("timestamp")
        if at is not None and at < self.modified_on:
            kwargs["timestamp"] = self.modified_on
        super().trigger_event(event_class, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """A copy that shares immutable values and copies containers: independent of the
        original as far as any mutation can reach (lists and dicts are new, recursively;
        anything neither immutable nor a plain list, dict or tuple of immutables goes
        through ``copy.deepcopy``)."""
        cls = type(self)
        clone = cls.__new__(cls)
        memo[id(self)] = clone
        state = clone.__dict__
        for name, value in self.__dict__.items():
            state[name] = _copied(value, memo)
        return clone
