"""The garbage collector held back during long folds, and put back after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from vault.folding import FOLD_GEN0_THRESHOLD, collector_held_back


@pytest.fixture(autouse=True)
def _thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def test_a_fold_raises_the_young_threshold_and_puts_it_back() -> None:
    gc.set_threshold(700, 10, 10)
    with collector_held_back():
        assert gc.get_threshold() == (FOLD_GEN0_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_folds_restore_only_when_the_last_ends() -> None:
    gc.set_threshold(700, 10, 10)
    first, second = collector_held_back(), collector_held_back()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == FOLD_GEN0_THRESHOLD  # the second fold still runs
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_failing_fold_still_puts_the_thresholds_back() -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), collector_held_back():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_or_a_switched_off_collector_is_left_alone() -> None:
    gc.set_threshold(FOLD_GEN0_THRESHOLD * 2, 10, 10)
    with collector_held_back():
        assert gc.get_threshold()[0] == FOLD_GEN0_THRESHOLD * 2
    gc.set_threshold(0, 10, 10)
    with collector_held_back():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)
