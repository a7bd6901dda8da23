"""Long folds over the whole log: the cyclic garbage collector held back, and the next
page of the log read while the current one is folded (:func:`pages_read_ahead`).

Reading a million events allocates millions of small objects (decoded events, their
dicts, ids, timestamps) while the folded state keeps growing. Under the interpreter's
default thresholds the collector's youngest generation runs every 700 allocations, so a
fold triggers it thousands of times per second and keeps moving survivors up to be
scanned again; ``bench/readjudicate.py`` measured that at about a third of
re-adjudication's time. The objects a fold makes hold no reference cycles, and reference
counting frees them, so the collector has nothing to find there.

:func:`collector_held_back` raises the youngest generation's threshold for the length of
a fold. It does not disable the collector: cycles made meanwhile (by this thread or any
other, the setting is process-wide) are still collected, only in fewer, larger passes.
Folds running at once share one setting, and the thresholds found before the first of
them are put back when the last one ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from eventsourcing.persistence import Notification

FOLD_GEN0_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation during a fold."""


class _HeldBack:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folds = 0
        self._saved: tuple[int, int, int] = gc.get_threshold()

    def enter(self) -> None:
        with self._lock:
            if self._folds == 0:
                self._saved = gc.get_threshold()
                young, middle, old = self._saved
                if young:  # 0 means the collector was switched off: leave it so
                    gc.set_threshold(max(young, FOLD_GEN0_THRESHOLD), middle, old)
            self._folds += 1

    def leave(self) -> None:
        with self._lock:
            self._folds -= 1
            if self._folds == 0:
                gc.set_threshold(*self._saved)


_held_back = _HeldBack()


@contextmanager
def collector_held_back() -> Iterator[None]:
    """Run the body with the garbage collector's youngest generation collected rarely."""
    _held_back.enter()
    try:
        yield
    finally:
        _held_back.leave()


def pages_read_ahead(
    read: Callable[[int, int], Sequence[Notification]], start: int, head: int, page: int
) -> Iterator[Sequence[Notification]]:
    """The log from ``start`` up to ``head``, page by page, each next page read by a helper
    thread while the caller works through the current one.

    ``read(position, limit)`` is the recorder's ``select_notifications``. The database
    does its part of a read (and SQLite's and psycopg's drivers theirs) without holding
    the interpreter lock, so that time overlaps the fold instead of adding to it. The
    helper is stopped when the caller stops early.
    """
    if start > head:
        return

    def fetch(position: int) -> Sequence[Notification]:
        return read(position, min(page, head - position + 1))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as helper:
        ahead = helper.submit(fetch, start)
        try:
            while True:
                notifications = ahead.result()
                if not notifications:
                    return
                following = notifications[-1].id + 1
                if following <= head:
                    ahead = helper.submit(fetch, following)
                yield notifications
                if following > head:
                    return
        finally:
            ahead.cancel()
