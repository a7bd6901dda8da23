"""The rate limiter's counters: ``limits``' memory storage, without a thread per request.

``limits.storage.MemoryStorage`` drops expired counters on a timer: every count starts a
new ``threading.Timer`` (10 ms) unless the last one is still running, so under load the
event loop starts a thread every few requests and waits for it to run. Whether a counter
has expired is checked on every read anyway (``MemoryStorage.get``); the timer only frees
memory. Here the same sweep runs on the counting thread, at most once a second.
"""

from __future__ import annotations

import time

from limits.storage import MemoryStorage

SWEEP_SECONDS = 1.0


class SweptMemoryStorage(MemoryStorage):
    """``MemoryStorage`` whose expired counters are swept on the counting thread, at most
    once every :data:`SWEEP_SECONDS`, instead of by a timer thread started per count."""

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()  # the one the constructor starts; no other is started
        self._next_sweep = time.monotonic() + SWEEP_SECONDS

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
