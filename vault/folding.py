"""Long folds over the whole log, with the cyclic garbage collector held back.

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
from collections.abc import Iterator
from contextlib import contextmanager

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
