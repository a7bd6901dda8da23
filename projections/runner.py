"""Keeping the read models up to date: exactly once, in batches, following the log live.

Each batch of events is applied and the position it reached is recorded in one
transaction, after taking the tracking row's lock, so a batch is applied once
however many runners (API processes, a worker) follow the same database.
PostgreSQL wakes the follower with the events table's NOTIFY; SQLite is polled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import Notification

from projections.database import Database, LockHeld, LogTable, Run, Waiter
from projections.ledger import Ledger
from projections.projector import Projector
from projections.schema import (
    GENERATION,
    PROJECTION,
    TRACKING,
    active_generation,
    add_missing_columns,
    create_common,
    create_generation,
    drop_generation,
    generation_exists,
    key_access_log,
    lock_active_generation,
    position,
    set_position,
)
from vault.folding import collector_held_back
from vault.ports import DataKeys, EventLog

BATCH = 500  # events per transaction while following: small, so each lands soon
REBUILD_BATCH = 5000  # while rebuilding: large, so fewer round trips and commits
SPAN = 2
"""A batch covers at most this many times its size of the log (the events it reads
are fewer: uses and reuses are counted by the database)."""
GATHER_SECONDS = 0.25
"""After a round that found fewer events than a batch, the follower waits this long
before the next — unless someone waits for a position it has not reached
(:meth:`ViewRunner.wait_for`, a read-your-writes read), which ends the wait at once.
Under a steady load each round then applies what many requests wrote in one
transaction, rather than three events per commit: each round costs two write
transactions, the views' and the ledger's, and a few milliseconds of the interpreter
whatever it holds. It adds at most this much to the lag of a read that names no
position."""
log = logging.getLogger("civicvault.views")


class RebuildRunning(Exception):
    """A rebuild was asked for while another one runs (:meth:`ViewRunner.rebuild`)."""


class ViewRunner:
    """Applies the notification log to the views."""

    def __init__(
        self,
        events: EventLog,
        keys: DataKeys,
        db: Database,
        log_table: LogTable,
        wakeups: Callable[[], AbstractContextManager[Waiter]],
        *,
        batch: int = BATCH,
        rebuild_batch: int = REBUILD_BATCH,
        ledger: Ledger | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``log_table`` is where the event store keeps the log, in ``db`` (uses and reuses
        are counted there); ``wakeups`` opens a waiter for new events; ``now`` is the clock
        events are stamped by (the lag is measured on it)."""
        self.now = now
        self.events = events
        self.keys = keys
        self.log_table = log_table
        self.wakeups = wakeups
        self.db = db
        self.ledger = ledger
        self._ledger_retry_at = 0.0
        self._ledger_pause = 0.5
        self._hurry = threading.Event()
        """Set by a reader waiting for a position the views have not reached."""
        self.batch = batch
        self.rebuild_batch = rebuild_batch
        create_common(db)
        with db.transaction() as run:
            # The serving generation's tables and tracking row, made (the first time)
            # while the generation row is locked: a rebuild switching meanwhile waits, so
            # this never makes again the tables of a generation it has just dropped. Only
            # when they are missing: making them "if not exists" still locks the tables
            # against the followers' writes until this commits.
            serving = lock_active_generation(run, db)
            if not generation_exists(run, db, serving):
                create_generation(run, db, serving)
            else:
                add_missing_columns(run, db, serving)
            run(
                f"INSERT INTO {db.table(TRACKING)} (name, generation, position) "
                "VALUES (?, ?, 0) ON CONFLICT (name, generation) DO NOTHING",
                (PROJECTION, serving),
            )

    def generation(self) -> int:
        with self.db.read() as run:
            return active_generation(run, self.db)

    def position(self, generation: int | None = None) -> int:
        """How far the views (of the serving generation, by default) have got in the log."""
        with self.db.read() as run:
            return position(run, self.db, generation or active_generation(run, self.db))

    def catch_up(
        self,
        generation: int | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
        batch: int | None = None,
        until: int | None = None,
    ) -> int:
        """Apply every event recorded so far (or until the views have reached ``until``);
        returns how many events of the log that covered."""
        applied = 0
        if until is None:
            # What is recorded now, even where another follower (the server's own)
            # writes some of the batches first: returning at the first batch it wrote
            # would leave the rest unapplied for a moment after this returned.
            until = self.events.head()
        reached = self.position(generation)
        while not (stop and stop.is_set()) and reached < until:
            done, now = self.step(generation, batch=batch)
            if not done:
                if now <= reached:
                    return applied  # nothing more in the log
                reached = now  # another follower wrote that batch first: read on from there
                continue
            applied, reached = applied + done, now
            if progress:
                progress(reached)
        return applied

    def step(self, generation: int | None = None, *, batch: int | None = None) -> tuple[int, int]:
        """Apply one batch in one transaction; returns how many events of the log it
        covered (counted, applied or passed over as changing no view) and the position in
        the log the views then reached.

        Everything that reads (the events, the residents' keys) happens before the
        write transaction opens: SQLite's pool hands out one writer, and a writer
        waiting for a reader connection could wait on a thread waiting for it.
        """
        with self.db.read() as run:
            gen = generation or active_generation(run, self.db)
            start = position(run, self.db, gen)
        prepared = self._prepare(gen, start, batch or self.batch)
        if prepared is None:
            return 0, start
        return self._commit(prepared)

    def _prepare(self, generation: int, start: int, batch: int) -> _Batch | None:
        """The views' changes for the events after ``start`` (up to ``batch`` of those
        read one by one), not yet written."""
        head = self.events.head()
        if head <= start:
            return None
        projector = Projector(self.db, generation, self.log_table)
        # Only the events that change a view are read; uses and reuses (most of a busy
        # log) are counted by the database when the batch is written. Every id up to
        # ``head`` is committed (ids are given in commit order), so the read here and
        # the count there see the same log. The range is bounded too: a query for the
        # first ``batch`` of some topics among all the rest of a long log can be planned
        # as a sort of all of them.
        stop = min(head, start + SPAN * batch)
        notifications = self.events.select_notifications(
            start + 1, batch, stop=stop, topics=projector.topics
        )
        end = notifications[-1].id if len(notifications) == batch else stop
        # Access events (most of the rest) are taken in from their stored state; the
        # others are decoded into events.
        states = self._stored_states(notifications, projector)
        events = self.events.decode(
            [n for n, state in zip(notifications, states, strict=True) if state is None]
        )
        # Access rows keep their events' own sealed fields, so few events need a key here.
        projector.key_of = self.keys.data_keys(projector.owners_to_seal(events)).get
        decoded = iter(events)
        for notification, state in zip(notifications, states, strict=True):
            if state is None:
                projector.apply(next(decoded), notification.id)
            else:
                projector.take_stored(
                    notification.topic, notification.originator_id, state, notification.id
                )
        return _Batch(generation, start, end, end - start, projector)

    def _stored_states(
        self, notifications: Sequence[Notification], projector: Projector
    ) -> list[dict[str, Any] | None]:
        """Each notification's stored state where the projector takes it in so; None
        where it wants the event (or the event needs upcasting first)."""
        stored = [n for n in notifications if projector.takes_stored(n.topic)]
        states = iter(self.events.stored_states(stored, **projector.stored_fields))
        return [
            next(states) if projector.takes_stored(n.topic) else None for n in notifications
        ]

    def _commit(self, batch: _Batch, *, bulk: bool = False) -> tuple[int, int]:
        """Write a prepared batch and its position in one transaction, unless the views
        are no longer where it started (another follower wrote first): then nothing.

        ``bulk``: the batch is part of a rebuild's bulk load (on PostgreSQL) into a
        generation no other writer touches and nobody reads, so its new rows go in by
        ``COPY``, its uses and reuses are left for :meth:`_end_bulk_load` to count in
        one pass, and its commit does not wait for the disk (``synchronous_commit =
        off``). That risks nothing: a batch's rows and its position still commit or
        vanish together, so a server crash can take back the last few batches but never
        apply one twice or skip one; and the commit that puts the generation in service
        waits for the disk, which makes every commit before it durable too."""
        with self.db.transaction() as run:
            reached = self._lock_position(run, batch.generation)
            if reached != batch.start:
                # Another follower applied this batch first (read again), or a rebuild
                # dropped the generation (the next step reads the one now serving).
                return 0, batch.start if reached is None else reached
            if bulk:
                run("SET LOCAL synchronous_commit = off")
                batch.projector.copy_inserts(run)
            with run.pipeline() as write:
                batch.projector.flush(write)
                if not bulk:
                    batch.projector.add_counts(write, batch.start + 1, batch.end)
            set_position(run, self.db, batch.generation, batch.end)
        return batch.events, batch.end

    def _catch_up_overlapped(
        self, generation: int, progress: Callable[[int], None] | None, until: int
    ) -> None:
        """Catch up to ``until`` with each batch written by a helper thread while the next
        one is prepared: the database's time on a write overlaps the decoding of what
        follows. Batches are written one at a time, in order, each checked against the
        position it started from, so a batch prepared after one that was refused is
        refused too; it stops at the first refused (the caller catches up the plain
        way)."""
        start = self.position(generation)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="views-writer") as writer:
            writing: Future[tuple[int, int]] | None = None
            while True:
                prepared = (
                    self._prepare(generation, start, self.rebuild_batch)
                    if start < until else None
                )
                if writing is not None:
                    done, reached = writing.result()
                    if not done:  # someone else moved the views
                        break
                    if progress:
                        progress(reached)
                if prepared is None:
                    break
                writing = writer.submit(self._commit, prepared, bulk=True)
                start = prepared.end

    def _end_bulk_load(self, generation: int) -> None:
        """Finish what a rebuild's bulk load left (see :meth:`_commit`): add the uses and
        reuses up to the position it reached, counted in one pass over the log rather
        than a pass and a few thousand row updates per batch, and key the access log.
        The two touch different tables and each is a pass over a large one (the log,
        the access log), so they run side by side, in two transactions; the generation
        is whole once both have committed (and if either fails, the rebuild fails, and
        the next one starts over)."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="views-keys") as helper:
            keyed = helper.submit(self._key_access_log, generation)
            with self.db.transaction() as run:
                reached = self._held_position(run, generation)
                with run.pipeline() as write:
                    Projector(self.db, generation, self.log_table).add_counts(write, 1, reached)
            keyed.result()

    def _key_access_log(self, generation: int) -> None:
        with self.db.transaction() as run:
            key_access_log(run, self.db, generation)

    def follow(self, stop: threading.Event) -> None:
        """Keep the views (and the ledger, when there is one) up to date until ``stop``
        is set.

        A batch that fails rolls back whole and is tried again, after a pause that
        grows to a minute; the error is logged each time, and the lag shows in
        ``/metrics`` and ``/readyz``. The ledger retries on its own schedule, so a
        ledger that stops (say, at a gap in the log) does not stop the views.
        """
        pause = 0.5
        while not stop.is_set():
            try:
                with self.wakeups() as wakeup:
                    while not stop.is_set():
                        applied = self.catch_up(stop=stop) + self._grow_ledger(stop)
                        if applied == 0:
                            wakeup.wait(stop)
                        elif applied < self.batch:
                            self._gather(stop)
                        self._hurry.clear()
                        pause = 0.5
            except Exception:
                log.exception("read models: a batch failed; retrying in %.1f s", pause)
                stop.wait(pause)
                pause = min(pause * 2, 60.0)

    def _gather(self, stop: threading.Event) -> None:
        """Wait up to :data:`GATHER_SECONDS` for more events, less if a reader is waiting
        for a position (or the follower is stopped)."""
        deadline = time.monotonic() + GATHER_SECONDS
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._hurry.wait(min(left, 0.05)):
                return

    def _grow_ledger(self, stop: threading.Event) -> int:
        if self.ledger is None or time.monotonic() < self._ledger_retry_at:
            return 0
        try:
            added = self.ledger.catch_up(stop=stop)
        except Exception:
            log.exception("ledger: a batch failed; retrying in %.1f s", self._ledger_pause)
            self._ledger_retry_at = time.monotonic() + self._ledger_pause
            self._ledger_pause = min(self._ledger_pause * 2, 60.0)
            return 0
        self._ledger_pause = 0.5
        return added

    def wait_for(self, target: int, timeout: float) -> bool:
        """Wait until the views have reached ``target`` in the log; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.position() < target:
            if time.monotonic() >= deadline:
                return False
            self._hurry.set()  # a follower gathering events goes on at once
            time.sleep(0.01)
        return True

    def lag(self) -> tuple[int, float]:
        """(events not yet in the views, seconds the oldest of them has waited)."""
        head = self.events.head()
        reached = self.position()
        if head <= reached:
            return 0, 0.0
        # The first event not yet in the views, its time read without decoding it.
        first = self.events.select_notifications(reached + 1, 1)
        [state] = self.events.stored_states(first, times=("timestamp",))
        at = (
            datetime.fromisoformat(state["timestamp"])
            if state is not None
            else self.events.decode(first, open_personal=False)[0].timestamp
        )
        return head - reached, max(0.0, (self.now() - at).total_seconds())

    def rebuild(
        self,
        progress: Callable[[int, int], None] | None = None,
        *,
        stage: Callable[[str], None] | None = None,
    ) -> int:
        """Build a fresh generation from the first event while the serving one keeps
        serving; put it in service once it has caught up; drop the old one. Returns the
        position the new generation reached.

        ``progress(reached, head)`` is called as batches commit; ``stage(what)`` when a
        step begins that moves no position (the end of PostgreSQL's bulk load, a pass
        over the log and one over the access log).

        One rebuild at a time: a second, from any process, raises
        :class:`RebuildRunning` and changes nothing. (It would drop and create again
        the tables the first is filling, and the two would count uses twice.)"""
        try:
            with self.db.exclusive("rebuild"):
                return self._rebuild(progress, stage)
        except LockHeld:
            raise RebuildRunning(
                "another rebuild of the read models is running; wait for it to finish"
            ) from None

    def _rebuild(
        self,
        progress: Callable[[int, int], None] | None,
        stage: Callable[[str], None] | None,
    ) -> int:
        bulk = not self.db.sqlite  # loaded in bulk, then finished (see _commit)
        with self.db.transaction() as run:
            old = active_generation(run, self.db)
            new = old + 1
            drop_generation(run, self.db, new)
            create_generation(run, self.db, new, access_keyed=not bulk)
            set_position(run, self.db, new, 0)

        def report(reached: int) -> None:
            if progress:
                progress(reached, self.events.head())

        # The log as it is now, then only as far as the serving views: under a heavy
        # load the log's head can run ahead of every follower for good, while the
        # serving views move only as fast as their follower, which a rebuild (in larger
        # batches) outpaces. After the switch the followers carry the new views on.
        head = self.events.head()
        with collector_held_back():  # a million events' worth of short-lived objects
            if bulk:
                self._catch_up_overlapped(new, report, until=head)
                if stage:
                    stage("counting uses and reuses, keying the access log")
                self._end_bulk_load(new)
            # What the overlapped catch-up left (none unless it was refused a batch); on
            # SQLite, everything: its driver lets go of the interpreter lock around every
            # row, so a writer thread would contend with the decoding, not overlap it
            # (measured 15-30% slower); PostgreSQL's does its work in the server.
            self.catch_up(new, progress=report, batch=self.rebuild_batch, until=head)
            while not self._switch(old, new):  # the serving views are further on
                serving = self.position(old)
                self.catch_up(new, progress=report, batch=self.rebuild_batch, until=serving)
        reached = self.position(new)
        with self.db.transaction() as run:
            drop_generation(run, self.db, old)
        return reached

    def _switch(self, old: int, new: int) -> bool:
        """Put ``new`` in service in place of ``old`` if it has got at least as far in the
        log; False (nothing changed) if ``old`` is ahead. Both positions are locked, so
        no follower moves ``old`` on between the check and the switch: a reader never
        sees the views go back, nor a position it waited for undone."""
        with self.db.transaction() as run:
            serving = self._held_position(run, old)
            if self._held_position(run, new) < serving:
                return False
            run(
                f"UPDATE {self.db.table(GENERATION)} SET generation = ? WHERE name = ?",
                (new, PROJECTION),
            )
        return True

    def _held_position(self, run: Run, generation: int) -> int:
        """:meth:`_lock_position` for a generation that must be there: the serving one,
        or one this process is rebuilding (no one else may, nor drop it meanwhile)."""
        reached = self._lock_position(run, generation)
        if reached is None:
            raise LookupError(f"read models: generation {generation} has no position")
        return reached

    def _lock_position(self, run: Run, generation: int) -> int | None:
        """Take the generation's tracking row for this transaction, then read it; None if
        the generation has none (a rebuild dropped it after putting a new one in
        service)."""
        rows = run.locked(
            self.db.table(TRACKING), "position", "name = ? AND generation = ?",
            (PROJECTION, generation),
        )
        return int(rows[0][0]) if rows else None


@dataclass
class _Batch:
    """A batch of events projected in memory, to be written in one transaction."""

    generation: int
    start: int  # the position the views were at when it was read
    end: int  # the position they reach once it is written
    events: int  # the events of the log it covers (end - start), read one by one or not
    projector: Projector
