"""The batcher behind group-committed fetches: order, bounds, failures, cancellation, close."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.batching import Batcher


class Recorder:
    """A serve function that records each batch; it can be held until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(list(items))
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


def _held_batcher(max_batch: int = 64) -> tuple[Batcher[int, int], Recorder, Future[int]]:
    """A batcher whose thread is inside the first batch (item 0) until the gate opens."""
    serve = Recorder()
    serve.gate.clear()
    batcher: Batcher[int, int] = Batcher(serve, name="test", max_batch=max_batch)
    first = batcher.submit(0)
    assert serve.entered.wait(10)
    return batcher, serve, first


def test_each_item_gets_its_own_outcome() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder(), name="test")
    try:
        assert batcher.submit(4).result(10) == 40
        with pytest.raises(ValueError, match="odd 3"):
            batcher.submit(3).result(10)
    finally:
        batcher.close()


def test_items_waiting_together_are_served_as_one_batch_in_order_within_the_bound() -> None:
    batcher, serve, first = _held_batcher(max_batch=4)
    futures = [batcher.submit(i) for i in range(1, 11)]
    serve.gate.set()
    assert first.result(10) == 0
    outcomes: list[int | str] = []
    for f in futures:
        try:
            outcomes.append(f.result(10))
        except ValueError as e:
            outcomes.append(str(e))
    batcher.close()
    assert serve.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert outcomes == [
        "odd 1", 20, "odd 3", 40, "odd 5", 60, "odd 7", 80, "odd 9", 100,
    ]


def test_a_serve_that_raises_fails_every_item_of_its_batch_and_the_next_batch_is_served() -> (
    None
):
    calls: list[list[int]] = []

    def serve(items: Sequence[int]) -> list[int | Exception]:
        calls.append(list(items))
        if 13 in items:
            raise RuntimeError("storage down")
        return list(items)

    gate = threading.Event()
    entered = threading.Event()

    def held(items: Sequence[int]) -> list[int | Exception]:
        if items == [0]:
            entered.set()
            gate.wait(10)
        return serve(items)

    batcher: Batcher[int, int] = Batcher(held, name="test")
    first = batcher.submit(0)
    assert entered.wait(10)
    doomed = [batcher.submit(i) for i in (12, 13)]
    gate.set()
    assert first.result(10) == 0
    for f in doomed:
        with pytest.raises(RuntimeError, match="storage down"):
            f.result(10)
    assert batcher.submit(7).result(10) == 7
    batcher.close()


def test_a_serve_that_returns_too_few_outcomes_fails_the_batch() -> None:
    batcher: Batcher[int, int] = Batcher(lambda items: [], name="test")
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        batcher.submit(1).result(10)
    batcher.close()


def test_an_item_cancelled_before_its_batch_began_is_not_served() -> None:
    batcher, serve, _first = _held_batcher()
    cancelled = batcher.submit(2)
    kept = batcher.submit(4)
    assert cancelled.cancel()
    serve.gate.set()
    assert kept.result(10) == 40
    with pytest.raises(CancelledError):
        cancelled.result(10)
    batcher.close()
    assert serve.batches == [[0], [4]]


def test_close_serves_what_was_queued_then_refuses_more() -> None:
    batcher, serve, _first = _held_batcher()
    queued = batcher.submit(6)
    closing = threading.Thread(target=batcher.close)
    closing.start()
    serve.gate.set()
    closing.join(10)
    assert not closing.is_alive()
    assert queued.result(0) == 60
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(8)
    batcher.close()  # twice is fine


def test_an_idle_batcher_lets_its_thread_go_and_starts_another_when_needed() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder(), name="idle-test", idle_seconds=0.05)
    assert batcher.submit(2).result(10) == 20
    deadline = time.monotonic() + 10
    while any(t.name == "idle-test" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the idle thread did not end"
        time.sleep(0.01)
    assert batcher.submit(4).result(10) == 40
    batcher.close()


def test_the_idle_hook_runs_on_the_thread_each_time_it_ends_and_before_another_starts() -> None:
    calls: list[str] = []
    batcher: Batcher[int, int] = Batcher(
        Recorder(), name="idle-hook", idle_seconds=0.05,
        on_idle=lambda: calls.append(threading.current_thread().name),
    )
    assert batcher.submit(2).result(10) == 20
    deadline = time.monotonic() + 10
    while not calls:
        assert time.monotonic() < deadline, "the idle hook did not run"
        time.sleep(0.01)
    assert calls == ["idle-hook"]
    assert batcher.submit(4).result(10) == 40
    batcher.close()  # a thread ended by close runs it too
    assert calls == ["idle-hook", "idle-hook"]


@settings(max_examples=25, deadline=None)
@given(
    items=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=60),
    threads=st.integers(min_value=1, max_value=6),
    max_batch=st.integers(min_value=1, max_value=8),
)
def test_from_any_number_of_threads_every_item_gets_exactly_its_outcome(
    items: list[int], threads: int, max_batch: int
) -> None:
    served: list[int] = []

    def serve(batch: Sequence[int]) -> list[int | Exception]:
        assert len(batch) <= max_batch
        served.extend(batch)
        return [ValueError(str(i)) if i % 3 == 0 else i + 1 for i in batch]

    batcher: Batcher[int, int] = Batcher(serve, name="prop", max_batch=max_batch)
    results: dict[int, object] = {}

    def submit_share(share: list[tuple[int, int]]) -> None:
        for n, item in share:
            future = batcher.submit(item)
            try:
                results[n] = future.result(10)
            except ValueError as e:
                results[n] = f"error {e}"

    numbered = list(enumerate(items))
    workers = [
        threading.Thread(target=submit_share, args=(numbered[k::threads],))
        for k in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    batcher.close()
    assert sorted(served) == sorted(items)
    assert results == {
        n: (f"error {i}" if i % 3 == 0 else i + 1) for n, i in numbered
    }
