"""The ledger: a Merkle tree over the whole notification log, with signed checkpoints.

Event ``N`` (its notification id) is leaf ``N - 1``. A leaf is the stored record as it
sits in the event store — topic, originator id, version and the stored state bytes,
personal fields still sealed — so crypto-shredding a resident changes no leaf, and the
ledger keeps verifying after an erasure::

    leaf = len(topic) as 2 bytes || topic (UTF-8) || originator id (16 bytes)
           || version as 8 bytes || state            (integers big-endian)

The hash of every perfect subtree is kept (``cv_ledger_nodes``), so a proof at any size
is a handful of lookups. A checkpoint (signed tree head) is an Ed25519 signature over::

    b"civicvault checkpoint v1\\n" || tree size (8 bytes) || time in ms (8 bytes) || root

written every ``checkpoint_events`` events or ``checkpoint_seconds`` seconds, whichever
comes first, and kept for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from projections.database import Database, Run
from projections.merkle import (
    Frontier,
    Node,
    ProofError,
    consistency_ranges,
    hashes_of,
    inclusion_ranges,
    leaf_hash,
    perfect_parts,
    range_hash,
)
from vault.ports import Notifications

NODES = "cv_ledger_nodes"
STATE = "cv_ledger_state"
CHECKPOINTS = "cv_ledger_checkpoints"
BATCH = 5000
CHECKPOINT_PREFIX = b"civicvault checkpoint v1\n"
log = logging.getLogger("civicvault.ledger")


class LedgerGap(Exception):
    """The log skips a notification id: an event was deleted (or the log was reordered)."""


def leaf_data(
    topic: str, originator_id: UUID | str, version: int, state: bytes | str
) -> bytes:
    name = topic.encode()
    return (
        len(name).to_bytes(2, "big")
        + name
        + (originator_id if isinstance(originator_id, UUID) else UUID(originator_id)).bytes
        + version.to_bytes(8, "big")
        + (state.encode() if isinstance(state, str) else bytes(state))  # TEXT if tampered with
    )


def leaf_of(notification: Any) -> bytes:
    return leaf_data(
        notification.topic,
        notification.originator_id,
        notification.originator_version,
        notification.state,
    )


def checkpoint_message(tree_size: int, timestamp: datetime, root_hash: bytes) -> bytes:
    millis = int(timestamp.timestamp() * 1000)
    return CHECKPOINT_PREFIX + tree_size.to_bytes(8, "big") + millis.to_bytes(8, "big") + root_hash


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root_hash: bytes
    timestamp: datetime
    key_id: str
    signature: bytes

    def message(self) -> bytes:
        return checkpoint_message(self.tree_size, self.timestamp, self.root_hash)

    def to_json(self) -> dict[str, Any]:
        """As the API serves it: hashes and signatures in lower-case hex, time RFC 3339."""
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "timestamp": self.timestamp.isoformat(),
            "key_id": self.key_id,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Any) -> Checkpoint:
        """A checkpoint as :meth:`to_json` writes it; ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a checkpoint is a JSON object")
        try:
            size, key_id = data["tree_size"], data["key_id"]
            timestamp = datetime.fromisoformat(data["timestamp"])
            root, signature = bytes.fromhex(data["root_hash"]), bytes.fromhex(data["signature"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a checkpoint: {e!r}") from None
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size < 2**63:
            raise ValueError(f"tree_size must be a positive integer, not {size!r}")
        if not isinstance(key_id, str) or len(root) != 32 or timestamp.tzinfo is None:
            raise ValueError("a checkpoint needs a key_id, a 32-byte root and a zoned time")
        if not 0 <= timestamp.timestamp() < 2**63 / 1000:
            raise ValueError(f"timestamp out of range: {data['timestamp']!r}")
        return cls(size, root, timestamp, key_id, signature)

    def verify(self, public_keys: dict[str, Ed25519PublicKey]) -> bool:
        key = public_keys.get(self.key_id)
        if key is None:
            return False
        try:
            key.verify(self.signature, self.message())
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    inclusion_path: list[bytes]


Signer = Callable[[bytes], tuple[str, bytes]]
"""sign(message) -> (key id, signature)."""


class Ledger:
    """Keeps the tree up to date with the log, writes checkpoints, answers proofs."""

    def __init__(
        self,
        log_: Notifications,
        db: Database,
        sign: Signer,
        *,
        batch: int = BATCH,
        checkpoint_events: int = 1000,
        checkpoint_seconds: float = 60.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.log = log_
        self.db = db
        self.sign = sign
        self.batch = batch
        self.checkpoint_events = checkpoint_events
        self.checkpoint_seconds = checkpoint_seconds
        self.now = now
        self._frontier: Frontier | None = None  # the tree's right edge, kept between batches
        self._lock = threading.Lock()
        self._latest: Checkpoint | None = None  # the newest checkpoint this process knows
        self._latest_read = False
        self.nodes_table = db.table(NODES)
        self.state_table = db.table(STATE)
        self.checkpoints_table = db.table(CHECKPOINTS)
        with db.transaction() as run:
            run.schema_lock()
            run(
                f"CREATE TABLE IF NOT EXISTS {self.nodes_table} (level INTEGER NOT NULL, "
                f"idx BIGINT NOT NULL, hash {db.blob} NOT NULL, PRIMARY KEY (level, idx))"
            )
            run(
                f"CREATE TABLE IF NOT EXISTS {self.state_table} ("
                "name TEXT PRIMARY KEY, size BIGINT NOT NULL)"
            )
            run(
                f"INSERT INTO {self.state_table} (name, size) VALUES ('ledger', 0) "
                "ON CONFLICT (name) DO NOTHING"
            )
            run(
                f"CREATE TABLE IF NOT EXISTS {self.checkpoints_table} ("
                f"tree_size BIGINT PRIMARY KEY, root_hash {db.blob} NOT NULL, "
                f"at TEXT NOT NULL, key_id TEXT NOT NULL, signature {db.blob} NOT NULL)"
            )

    # Growing the tree

    def size(self) -> int:
        """How many events the tree holds."""
        with self.db.transaction(commit=False) as run:
            return self._size(run)

    def _size(self, run: Run) -> int:
        return int(run(f"SELECT size FROM {self.state_table} WHERE name = 'ledger'")[0][0])

    def step(self) -> int:
        """Add the next batch of events to the tree in one transaction (and a checkpoint
        when one is due); returns how many were added."""
        with self._lock:
            start = self.size()
            notifications = self.log.select_notifications(start + 1, self.batch)
            if not notifications:
                self._checkpoint_if_due(start, force=False)
                return 0
            _check_contiguous(notifications, start + 1)
            frontier = self._frontier_at(start)
            grown = Frontier(frontier.size, [*frontier.roots])
            nodes: list[tuple[int, int, bytes]] = []
            for notification in notifications:
                nodes.extend(
                    (level, idx, digest)
                    for (level, idx), digest in grown.append(leaf_of(notification))
                )
            with self.db.transaction() as run:
                size = self._locked_size(run)
                if size != start:
                    self._frontier = None
                    return 0  # another process grew the tree first
                with run.pipeline() as write:
                    write.many(
                        f"INSERT INTO {self.nodes_table} (level, idx, hash) VALUES (?, ?, ?)",
                        nodes,
                    )
                run(f"UPDATE {self.state_table} SET size = ? WHERE name = 'ledger'",
                    (grown.size,))
            self._frontier = grown
            self._checkpoint_if_due(grown.size, force=False)
            return len(notifications)

    def catch_up(
        self,
        *,
        progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        added = 0
        while not (stop and stop.is_set()):
            done = self.step()
            if not done:
                return added
            added += done
            if progress:
                progress(self.size())
        return added

    def _locked_size(self, run: Run) -> int:
        [(size,)] = run.locked(self.state_table, "size", "name = 'ledger'", ())
        return int(size)

    def _frontier_at(self, size: int) -> Frontier:
        if self._frontier is None or self._frontier.size != size:
            self._frontier = Frontier.at(size, self.nodes)
        return self._frontier

    # Checkpoints

    def checkpoint(self) -> Checkpoint | None:
        """A checkpoint of the tree as it is now: the latest one if it already covers the
        tree, else a new one. None while the tree is empty."""
        with self._lock:
            size = self.size()
            return self._checkpoint_if_due(size, force=True) or self.checkpoint_at(size)

    def _checkpoint_if_due(self, size: int, *, force: bool) -> Checkpoint | None:
        if size == 0:
            return None
        if not self._latest_read:
            self._latest, self._latest_read = self.latest_checkpoint(), True
        now = self.now()
        if not (force or self._due(size, now)):
            return None  # decided on what this process knows: no query while idle
        # Other processes sign too: decide again on what is stored, so that k followers
        # do not sign k times as often.
        self._latest = self.latest_checkpoint()
        if not (force or self._due(size, now)) or (
            self._latest is not None and self._latest.tree_size >= size
        ):
            return None
        now = datetime.fromtimestamp(int(now.timestamp() * 1000) / 1000, UTC)  # ms, as signed
        root = self._frontier_at(size).root()  # in memory after a step: no query
        key_id, signature = self.sign(checkpoint_message(size, now, root))
        checkpoint = Checkpoint(size, root, now, key_id, signature)
        with self.db.transaction() as run:
            run(
                f"INSERT INTO {self.checkpoints_table} "
                "(tree_size, root_hash, at, key_id, signature) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (tree_size) DO NOTHING",
                (size, root, now.isoformat(), key_id, signature),
            )
        # Another process may have signed this size first; what is stored is what counts.
        self._latest = self.checkpoint_at(size) or checkpoint
        return self._latest

    def _due(self, size: int, now: datetime) -> bool:
        latest = self._latest
        if latest is None:
            return True
        return latest.tree_size < size and (
            size - latest.tree_size >= self.checkpoint_events
            or (now - latest.timestamp).total_seconds() >= self.checkpoint_seconds
        )

    def latest_checkpoint(self) -> Checkpoint | None:
        rows = self._checkpoint_rows("ORDER BY tree_size DESC LIMIT 1", ())
        return rows[0] if rows else None

    def checkpoint_at(self, tree_size: int) -> Checkpoint | None:
        rows = self._checkpoint_rows("WHERE tree_size = ?", (tree_size,))
        return rows[0] if rows else None

    def checkpoints(self) -> Iterator[Checkpoint]:
        yield from self._checkpoint_rows("ORDER BY tree_size", ())

    def _checkpoint_rows(self, tail: str, params: tuple[Any, ...]) -> list[Checkpoint]:
        with self.db.transaction(commit=False) as run:
            rows = run(
                f"SELECT tree_size, root_hash, at, key_id, signature "
                f"FROM {self.checkpoints_table} {tail}",
                params,
            )
        return [
            Checkpoint(int(size), bytes(root), datetime.fromisoformat(at), key_id, bytes(sig))
            for size, root, at, key_id, sig in rows
        ]

    # Proofs

    def nodes(self, wanted: list[Node]) -> dict[Node, bytes]:
        """Stored hashes of perfect subtrees, by (level, index)."""
        found: dict[Node, bytes] = {}
        for at in range(0, len(wanted), 200):
            chunk = wanted[at : at + 200]
            values = ", ".join(["(?, ?)"] * len(chunk))
            params = [n for node in chunk for n in node]
            with self.db.transaction(commit=False) as run:
                # A join, not ``(level, idx) IN (VALUES ...)``: SQLite plans the IN form as a
                # scan of the whole table, the join as one primary-key lookup per node.
                rows = run(
                    f"SELECT n.level, n.idx, n.hash FROM (VALUES {values}) AS w "
                    f"JOIN {self.nodes_table} AS n "
                    "ON n.level = w.column1 AND n.idx = w.column2",
                    params,
                )
            found.update({(int(level), int(idx)): bytes(h) for level, idx, h in rows})
        missing = [node for node in wanted if node not in found]
        if missing:
            raise ProofError(f"the ledger does not hold nodes {missing[:3]}")
        return found

    def root(self, size: int) -> bytes:
        parts = perfect_parts(0, size)
        found = self.nodes(parts)
        return range_hash(found[node] for node in parts)

    def leaf_hash_map(self, start: int, end: int) -> dict[int, bytes]:
        """The stored hashes of the leaves in ``[start, end)`` that the tree holds, by index."""
        with self.db.transaction(commit=False) as run:
            rows = run(
                f"SELECT idx, hash FROM {self.nodes_table} "
                "WHERE level = 0 AND idx >= ? AND idx < ?",
                (start, end),
            )
        return {int(idx): bytes(h) for idx, h in rows}

    def _check_size(self, size: int) -> None:
        held = self.size()
        if size > held:
            raise ProofError(f"the ledger holds {held} events, not {size}")

    def inclusion(self, event: int, tree_size: int) -> InclusionProof:
        """Proof that event ``event`` (a notification id) is leaf ``event - 1`` of the
        tree of ``tree_size`` events."""
        return self.inclusions([event], tree_size)[event]

    def inclusions(self, events: Sequence[int], tree_size: int) -> dict[int, InclusionProof]:
        """Inclusion proofs for several events in one tree, reading their nodes together."""
        self._check_size(tree_size)
        ranges = {event: inclusion_ranges(event - 1, tree_size) for event in events}
        wanted = {(0, event - 1) for event in events}
        wanted.update(node for rs in ranges.values() for r in rs for node in perfect_parts(*r))
        found = self.nodes(sorted(wanted))
        return {
            event: InclusionProof(
                event - 1, tree_size, found[(0, event - 1)], hashes_of(rs, lambda _: found)
            )
            for event, rs in ranges.items()
        }

    def records(self, events: Sequence[int]) -> dict[int, bytes]:
        """The leaf data (:func:`leaf_data`) of each event, as the event store holds it now."""
        return {n.id: leaf_of(n) for n in self.log.select_notifications_at(events)}

    def consistency(self, first: int, second: int) -> list[bytes]:
        """Proof that the tree of ``second`` events extends the tree of ``first``."""
        self._check_size(second)
        return hashes_of(consistency_ranges(first, second), self.nodes)


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: ``problem`` is None when the log and ledger are intact."""

    events: int  # events read from the log
    in_ledger: int  # of which the tree holds
    checkpoints: int  # checkpoints checked
    problem: str | None = None
    first_bad_event: int | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify(
    log_: Notifications,
    ledger: Ledger,
    public_keys: dict[str, Ed25519PublicKey],
    *,
    anchors: Sequence[Checkpoint] = (),
    page: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> Verdict:
    """Recompute the tree from the event store and check it against the ledger's stored
    leaf hashes, every signed checkpoint in the database and every ``anchors`` checkpoint
    (signed tree heads kept outside the database, e.g. saved from the API); name the first
    event whose stored bytes changed, or where the log skips or ends early.

    Someone who can write to the database can rewrite an event together with the
    ledger's hashes and delete the checkpoints after it; what catches that is a checkpoint
    they cannot touch — an anchor — or a missing run of checkpoints, which is reported.
    """
    return _Verification(log_, ledger, public_keys, anchors).run(page, progress)


class _Verification:
    def __init__(
        self,
        log_: Notifications,
        ledger: Ledger,
        public_keys: dict[str, Ed25519PublicKey],
        anchors: Sequence[Checkpoint],
    ) -> None:
        self.log = log_
        self.ledger = ledger
        self.public_keys = public_keys
        self.held = ledger.size()
        self.stored_checkpoints = list(ledger.checkpoints())
        self.anchors = list(anchors)
        self.checked = 0
        self.last_good = 0  # the size of the latest checkpoint found intact
        self.frontier = Frontier()

    def verdict(self, problem: str | None = None, event: int | None = None) -> Verdict:
        events = self.frontier.size
        return Verdict(events, min(events, self.held), self.checked, problem, event)

    def run(self, page: int, progress: Callable[[int], None] | None) -> Verdict:
        problem = self._signatures() or self._coverage()
        if problem:
            return self.verdict(problem)
        pending = iter(sorted([*self.stored_checkpoints, *self.anchors],
                              key=lambda c: c.tree_size))
        due = next(pending, None)
        last_anchor = 0  # the size of the latest checkpoint from outside found intact
        expected = 1
        while True:
            notifications, unreadable = self._page(expected, page)
            if not notifications and unreadable is None:
                break
            start = expected - 1
            stored = self.ledger.leaf_hash_map(start, start + len(notifications))
            for notification in notifications:
                digest, problem = _read_leaf(notification, expected, stored.get(expected - 1))
                if problem is None and expected <= self.held and expected - 1 not in stored:
                    problem = f"the ledger has lost its hash of event {expected}"
                if problem is not None:
                    return self.verdict(problem, expected)
                self.frontier.append_hash(digest)
                while due is not None and due.tree_size == self.frontier.size:
                    anchored = due in self.anchors
                    if self.frontier.root() != due.root_hash:
                        after = last_anchor if anchored else self.last_good
                        return self.verdict(
                            f"the tree of {due.tree_size} events does not match its signed "
                            f"{'given ' if anchored else ''}checkpoint: an event from "
                            f"{after + 1} to {due.tree_size} was changed along with the "
                            "ledger's own hashes",
                            after + 1,
                        )
                    self.checked += 1
                    self.last_good = due.tree_size
                    last_anchor = due.tree_size if anchored else last_anchor
                    due = next(pending, None)
                expected += 1
            if unreadable is not None:
                return self.verdict(unreadable, expected)
            if progress:
                progress(expected - 1)
        claimed = max(self.held, due.tree_size if due else 0)
        if self.frontier.size < claimed:
            return self.verdict(
                f"the log ends at event {self.frontier.size} but the ledger holds "
                f"{claimed}: events {self.frontier.size + 1} to {claimed} were deleted",
                self.frontier.size + 1,
            )
        return self.verdict()

    def _signatures(self) -> str | None:
        for kind, checkpoints in (("", self.stored_checkpoints), ("given ", self.anchors)):
            for checkpoint in checkpoints:
                if not checkpoint.verify(self.public_keys):
                    return (
                        f"the {kind}checkpoint at {checkpoint.tree_size} events has no "
                        f"valid signature by key {checkpoint.key_id}"
                    )
        return None

    def _coverage(self) -> str | None:
        """The ledger signs at least every ``checkpoint_events`` (plus one batch): a longer
        unsigned stretch means checkpoints were deleted."""
        signed = max((c.tree_size for c in self.stored_checkpoints), default=0)
        slack = self.ledger.checkpoint_events + self.ledger.batch
        if self.held and not self.stored_checkpoints:
            return f"the ledger holds {self.held} events but no signed checkpoint: " \
                "the checkpoints were deleted"
        if self.held - signed > slack:
            return (
                f"the newest signed checkpoint covers {signed} of the {self.held} events "
                "the ledger holds: the checkpoints after it were deleted"
            )
        return None

    def _page(self, start: int, page: int) -> tuple[Sequence[Any], str | None]:
        """The next page of the log, and what stops the reading there, if anything: when
        the store cannot decode a row, the page is read one event at a time up to it."""
        try:
            return self.log.select_notifications(start, page), None
        except Exception:
            readable: list[Any] = []
            event = start
            while len(readable) < page:
                try:
                    found = self.log.select_notifications(event, 1)
                except Exception as e:
                    return readable, f"event {event} cannot be read from the store: {e}"
                if not found:
                    break
                readable.extend(found)
                event = found[0].id + 1
            return readable, None


def _read_leaf(
    notification: Any, expected: int, stored: bytes | None
) -> tuple[bytes, str | None]:
    """The leaf hash of the record at ``expected``, or what is wrong with it."""
    if notification.id != expected:
        return b"", (
            f"event {expected} is missing: the log goes on at {notification.id} "
            "(deleted or reordered)"
        )
    try:
        digest = leaf_hash(leaf_of(notification))
    except (TypeError, ValueError, OverflowError, AttributeError) as e:
        return b"", f"event {expected} is not a well-formed record: {e}"
    if stored is not None and stored != digest:
        return b"", f"event {expected} differs from the bytes the ledger recorded for it"
    return digest, None


def _check_contiguous(notifications: Sequence[Any], expected: int) -> None:
    for notification in notifications:
        if notification.id != expected:
            raise LedgerGap(
                f"event {expected} is missing from the log (the next one is {notification.id})"
            )
        expected += 1
