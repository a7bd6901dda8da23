"""Group commit: requests from many threads, served a batch at a time by one thread.

A busy service asks for many small read-decide-save steps at once. Served one by one, each
pays for its own loads and its own commit, and concurrent steps on the same records conflict
and retry. A :class:`Batcher` queues them instead; its thread takes everything waiting (up to
a bound) and hands it to one function that serves the lot, typically in one transaction.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger("civicvault.batching")

_STOP = object()


class Batcher(Generic[In, Out]):
    """Serves submitted items in batches, in submission order, on one thread of its own.

    ``serve`` gets the items of one batch and returns one outcome per item, in order: a
    result, or the exception that item ends with. If ``serve`` itself raises, every item of
    the batch ends with that exception. An item whose future was cancelled before its batch
    began is left out. The thread starts with the first item, ends after ``idle_seconds``
    with nothing to do (so an idle batcher holds no thread, and a forgotten one can be
    collected), starts again with the next item, and stops for good at :meth:`close`, after
    serving everything submitted before it. Whenever the thread ends, it calls ``on_idle``
    last (to let go of what it kept between batches).
    """

    def __init__(
        self,
        serve: Callable[[Sequence[In]], Sequence[Out | Exception]],
        *,
        name: str,
        max_batch: int = 64,
        idle_seconds: float = 2.0,
        on_idle: Callable[[], None] = lambda: None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._serve = serve
        self._name = name
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self._on_idle = on_idle
        self._queue: queue.SimpleQueue[tuple[In, Future[Out]] | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, item: In) -> Future[Out]:
        """Queue ``item``; the future ends with its outcome."""
        future: Future[Out] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((item, future))
        return future

    def close(self) -> None:
        """Serve what is queued, then stop the thread. Later submits raise RuntimeError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        idled = False
        try:
            idled = self._loop()
        finally:
            if not idled:
                self._idle()

    def _idle(self) -> None:
        try:
            self._on_idle()
        except Exception:
            log.exception("%s: the idle hook failed", self._name)

    def _loop(self) -> bool:
        """Serve until idle (True: the idle hook has run) or closed (False)."""
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:  # submit starts a new thread once this one is unset
                    if self._queue.empty():
                        self._idle()  # before a new thread can start
                        self._thread = None
                        return True
                continue
            if first is _STOP:
                return False
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._serve_batch(batch)  # type: ignore[arg-type]
        return False

    def _serve_batch(self, batch: list[tuple[In, Future[Out]]]) -> None:
        live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            outcomes = self._serve([item for item, _ in live])
            if len(outcomes) != len(live):
                raise RuntimeError(
                    f"{self._name}: {len(outcomes)} outcomes for {len(live)} items"
                )
        except BaseException as e:
            for _, future in live:
                future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            log.debug("%s: a batch of %d failed", self._name, len(live), exc_info=True)
            return
        for (_, future), outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
