"""The rate limiter's storage counts as ``limits``' own does, without starting threads."""

from __future__ import annotations

import threading
import time

import pytest
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from adapters.http import rate_storage
from adapters.http.rate_storage import SweptMemoryStorage


def _threads_started_while(work: object) -> int:
    started: list[str] = []
    original = threading.Thread.start

    def counting(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    threading.Thread.start = counting  # type: ignore[method-assign]
    try:
        work()  # type: ignore[operator]
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    return len(started)


def test_counting_starts_no_thread_where_the_librarys_storage_starts_them() -> None:
    item = parse("1000/minute")

    def hits(storage: MemoryStorage) -> None:
        limiter = SlidingWindowCounterRateLimiter(storage)
        for n in range(300):
            limiter.hit(item, f"principal-{n % 7}")
            time.sleep(0.0002)

    assert _threads_started_while(lambda: hits(MemoryStorage())) > 0  # the premise
    ours = SweptMemoryStorage()
    assert _threads_started_while(lambda: hits(ours)) == 0


def test_it_limits_as_the_librarys_storage_does() -> None:
    item = parse("5/second")
    theirs = SlidingWindowCounterRateLimiter(MemoryStorage())
    ours = SlidingWindowCounterRateLimiter(SweptMemoryStorage())
    for _ in range(8):
        assert ours.hit(item, "k") == theirs.hit(item, "k")
    assert ours.get_window_stats(item, "k").remaining == 0


def test_expired_counters_are_swept_on_a_later_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_storage, "SWEEP_SECONDS", 0.0)
    storage = SweptMemoryStorage()
    storage.incr("old", expiry=0.01)
    time.sleep(0.05)
    storage.incr("new", expiry=60)  # sweeps first
    assert "old" not in storage.storage
    assert storage.storage["new"] == 1
