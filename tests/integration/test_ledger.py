"""The ledger on real stores: proofs verify, checkpoints are signed, and rows altered,
deleted or reordered directly in SQLite or PostgreSQL are caught, naming the first bad event."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapters.wiring import Services
from projections.ledger import Checkpoint, Ledger, LedgerGap, Verdict, leaf_of, verify
from projections.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from tests.support import MovableClock
from vault.inputs import ConsentRequest, DocumentDetails

ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证", content_type="image/png")


def _history(services: Services, clock: MovableClock, residents: int = 3) -> int:
    for n in range(residents):
        resident = f"r{n}"
        services.documents.submit(resident, [f"card of {resident}".encode()], ID_CARD)
        services.consents.grant(
            resident,
            ConsentRequest(
                department="civil-affairs",
                doc_types=("id-card",),
                purpose="subsistence-allowance",
                valid_until=clock.now() + timedelta(days=30),
            ),
        )
    return services.events.head()


def _verdict(services: Services) -> Verdict:
    return verify(services.events, services.ledger, services.signing.public_keys("checkpoints"))


def _sql(services: Services) -> Callable[[str, tuple[object, ...]], None]:
    """Run a statement against the event store's own table, as an intruder with SQL would."""
    db = services.view_runner.db
    recorder = services.application.recorder
    table = db.table(recorder.events_table_name)  # type: ignore[attr-defined]
    id_column = "rowid" if db.sqlite else "notification_id"

    def run(statement: str, params: tuple[object, ...]) -> None:
        with db.transaction() as run_:
            run_(statement.format(table=table, id=id_column), params)

    return run


def test_proofs_from_the_ledger_verify_with_the_plain_verifiers(
    services: Services, clock: MovableClock
) -> None:
    events = _history(services, clock)
    ledger = services.ledger
    assert ledger.catch_up() == events
    first = ledger.checkpoint()
    assert first is not None
    assert first.tree_size == events
    assert first.verify(services.signing.public_keys("checkpoints"))
    assert ledger.checkpoint() == first  # nothing new to sign

    more = _history(services, clock, residents=2)
    ledger.catch_up()
    second = ledger.checkpoint()
    assert second is not None
    assert second.tree_size == more > events

    for event in (1, events // 2, events, more):
        proof = ledger.inclusion(event, second.tree_size)
        [notification] = services.events.select_notifications(event, 1)
        assert proof.leaf_hash == leaf_hash(leaf_of(notification))
        assert verify_inclusion(
            proof.leaf_hash, proof.leaf_index, proof.tree_size, proof.inclusion_path,
            second.root_hash,
        )
    path = ledger.consistency(first.tree_size, second.tree_size)
    assert verify_consistency(
        first.tree_size, second.tree_size, first.root_hash, second.root_hash, path
    )
    with pytest.raises(ProofError):
        ledger.inclusion(1, more + 1)  # the ledger does not hold that tree yet


def test_checkpoints_are_written_every_n_events(services: Services, clock: MovableClock) -> None:
    events = _history(services, clock, residents=4)
    ledger = Ledger(
        services.events,
        services.view_runner.db,
        lambda message: ("k", b"s"),
        batch=3,
        checkpoint_events=5,
        checkpoint_seconds=3600,
    )
    ledger.catch_up()
    sizes = [c.tree_size for c in ledger.checkpoints()]
    # The first batch is signed at once; after that, a checkpoint once 5 more are in.
    assert sizes[0] == 3
    assert all(b - a >= 5 for a, b in itertools.pairwise(sizes))
    assert sizes[-1] > events - 5


def test_the_follower_keeps_the_ledger_with_the_views(
    services: Services, clock: MovableClock
) -> None:
    events = _history(services, clock)
    stop = threading.Event()
    thread = threading.Thread(target=services.view_runner.follow, args=(stop,))
    thread.start()
    try:
        for _ in range(200):
            if services.ledger.size() == events and services.ledger.latest_checkpoint():
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join()
    assert services.ledger.size() == events
    assert _verdict(services).intact


def test_an_intact_log_verifies_and_erasure_keeps_it_so(
    services: Services, clock: MovableClock
) -> None:
    events = _history(services, clock)
    services.ledger.catch_up()
    services.ledger.checkpoint()
    services.residents.erase("r1")  # shreds r1's key: sealed fields stay as stored
    services.ledger.catch_up()
    services.ledger.checkpoint()
    verdict = _verdict(services)
    assert verdict.intact, verdict.problem
    assert verdict.events == verdict.in_ledger == services.events.head()
    assert verdict.events > events
    assert verdict.checkpoints == 2


def _tampered(services: Services, clock: MovableClock) -> int:
    events = _history(services, clock)
    services.ledger.catch_up()
    services.ledger.checkpoint()
    assert _verdict(services).intact
    return events


def test_a_changed_byte_is_named(services: Services, clock: MovableClock) -> None:
    _tampered(services, clock)
    [notification] = services.events.select_notifications(4, 1)
    state = bytearray(notification.state)
    state[len(state) // 2] ^= 0x01
    _sql(services)("UPDATE {table} SET state = ? WHERE {id} = ?", (bytes(state), 4))
    verdict = _verdict(services)
    assert (verdict.intact, verdict.first_bad_event) == (False, 4)
    assert "event 4 differs" in (verdict.problem or "")


def test_a_deleted_event_in_the_middle_is_named(services: Services, clock: MovableClock) -> None:
    _tampered(services, clock)
    _sql(services)("DELETE FROM {table} WHERE {id} = ?", (3,))
    verdict = _verdict(services)
    assert (verdict.intact, verdict.first_bad_event) == (False, 3)
    assert "event 3 is missing" in (verdict.problem or "")


def test_the_ledger_will_not_grow_past_a_gap(services: Services, clock: MovableClock) -> None:
    _history(services, clock)
    _sql(services)("DELETE FROM {table} WHERE {id} = ?", (3,))
    with pytest.raises(LedgerGap, match="event 3 is missing"):
        services.ledger.step()
    assert services.ledger.size() == 0  # nothing of the batch was kept


def test_deleted_last_events_are_named(services: Services, clock: MovableClock) -> None:
    events = _tampered(services, clock)
    _sql(services)("DELETE FROM {table} WHERE {id} >= ?", (events - 1,))
    verdict = _verdict(services)
    assert (verdict.intact, verdict.first_bad_event) == (False, events - 1)
    assert f"events {events - 1} to {events} were deleted" in (verdict.problem or "")


def test_reordered_events_are_named(services: Services, clock: MovableClock) -> None:
    _tampered(services, clock)
    run = _sql(services)
    second, fifth = services.events.select_notifications(2, 4)[0::3]
    assert (second.id, fifth.id) == (2, 5)
    # Swap the two records' contents: every row is still a valid event, in the wrong place.
    placeholder = "00000000-0000-0000-0000-000000000000"
    if services.view_runner.db.sqlite:
        key_of = lambda n: n.originator_id.hex  # noqa: E731 - SQLite keeps the bare hex
        holder = placeholder.replace("-", "")
    else:
        key_of = lambda n: n.originator_id  # noqa: E731
        holder = placeholder
    swap = "UPDATE {table} SET originator_id = ?, originator_version = ? WHERE {id} = ?"
    run(swap, (holder, 0, 2))
    run(swap, (key_of(second), second.originator_version, 5))
    run(swap, (key_of(fifth), fifth.originator_version, 2))
    run("UPDATE {table} SET topic = ?, state = ? WHERE {id} = ?", (fifth.topic, fifth.state, 2))
    run("UPDATE {table} SET topic = ?, state = ? WHERE {id} = ?", (second.topic, second.state, 5))
    verdict = _verdict(services)
    assert (verdict.intact, verdict.first_bad_event) == (False, 2)


def test_an_event_rewritten_with_the_ledgers_own_hashes_is_caught_by_the_checkpoint(
    services: Services, clock: MovableClock
) -> None:
    _tampered(services, clock)
    [notification] = services.events.select_notifications(4, 1)
    forged = bytes(notification.state) + b" "
    _sql(services)("UPDATE {table} SET state = ? WHERE {id} = ?", (forged, 4))
    db = services.view_runner.db
    with db.transaction() as run:  # the intruder also rewrites the ledger's leaf for event 4
        run(
            f"UPDATE {db.table('cv_ledger_nodes')} SET hash = ? WHERE level = 0 AND idx = 3",
            (leaf_hash(leaf_of(replace(notification, state=forged))),),
        )
    verdict = _verdict(services)
    assert (verdict.intact, verdict.first_bad_event) == (False, 1)
    assert "does not match its signed checkpoint" in (verdict.problem or "")


def test_a_checkpoint_with_a_forged_signature_is_refused(
    services: Services, clock: MovableClock
) -> None:
    _tampered(services, clock)
    db = services.view_runner.db
    with db.transaction() as run:
        run(f"UPDATE {db.table('cv_ledger_checkpoints')} SET signature = ?", (b"\0" * 64,))
    verdict = _verdict(services)
    assert not verdict.intact
    assert "no valid signature" in (verdict.problem or "")


def _rewrite_event_and_ledger(services: Services, event: int) -> None:
    """What an intruder with SQL access but no master key can do: change an event, give the
    ledger the matching hashes all the way up, and drop the checkpoints that no longer fit."""
    [notification] = services.events.select_notifications(event, 1)
    forged = bytes(notification.state) + b" "
    _sql(services)("UPDATE {table} SET state = ? WHERE {id} = ?", (forged, event))
    db = services.view_runner.db
    with db.transaction() as run:
        run(f"DELETE FROM {db.table('cv_ledger_nodes')}")
        run(f"DELETE FROM {db.table('cv_ledger_checkpoints')}")
        run(f"UPDATE {db.table('cv_ledger_state')} SET size = 0")
    rebuilt = Ledger(services.events, db, lambda m: ("intruder", b"\0" * 64))
    rebuilt.catch_up()


def test_deleted_checkpoints_are_reported(services: Services, clock: MovableClock) -> None:
    _tampered(services, clock)
    _rewrite_event_and_ledger(services, 4)
    db = services.view_runner.db
    with db.transaction() as run:  # and the intruder's own unsigned checkpoint goes too
        run(f"DELETE FROM {db.table('cv_ledger_checkpoints')}")
    verdict = _verdict(services)
    assert not verdict.intact
    assert "no signed checkpoint: the checkpoints were deleted" in (verdict.problem or "")


def test_a_checkpoint_kept_outside_catches_a_rewrite_with_the_ledgers_hashes(
    services: Services, clock: MovableClock
) -> None:
    _tampered(services, clock)
    anchor = services.ledger.latest_checkpoint()
    assert anchor is not None
    saved = Checkpoint.from_json(json.loads(json.dumps(anchor.to_json())))  # as an auditor saves it
    _rewrite_event_and_ledger(services, 4)
    keys = services.signing.public_keys("checkpoints")
    verdict = verify(services.events, services.ledger, keys, anchors=[saved])
    assert not verdict.intact
    # The intruder's checkpoint is refused first; without it, the anchor names the rewrite.
    db = services.view_runner.db
    with db.transaction() as run:
        run(f"DELETE FROM {db.table('cv_ledger_checkpoints')}")
    services.ledger.checkpoint()  # even a freshly, honestly signed head of the forged tree
    verdict = verify(services.events, services.ledger, keys, anchors=[saved])
    assert (verdict.intact, verdict.first_bad_event) == (False, 1)
    assert f"the tree of {saved.tree_size} events does not match" in (verdict.problem or "")


def test_a_public_key_swapped_into_the_key_table_is_not_trusted(
    services: Services, clock: MovableClock
) -> None:
    _tampered(services, clock)
    [kid] = services.signing.public_keys("checkpoints")
    intruder = Ed25519PrivateKey.generate()
    public = intruder.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    db = services.view_runner.db
    with db.transaction() as run:  # same key id, the intruder's public key
        run(f"UPDATE {db.table('civicvault_signing_keys')} SET public_key = ? WHERE kid = ?",
            (public, kid))
        run(f"UPDATE {db.table('cv_ledger_checkpoints')} SET signature = ?",
            (intruder.sign(b"anything"),))
    assert services.signing.public_keys("checkpoints") == {}
    verdict = _verdict(services)
    assert not verdict.intact
    assert "no valid signature" in (verdict.problem or "")


def test_a_lost_ledger_hash_is_named(services: Services, clock: MovableClock) -> None:
    _tampered(services, clock)
    db = services.view_runner.db
    with db.transaction() as run:
        run(f"DELETE FROM {db.table('cv_ledger_nodes')} WHERE level = 0 AND idx = 2")
    verdict = _verdict(services)
    assert (verdict.intact, verdict.first_bad_event) == (False, 3)
    assert "lost its hash of event 3" in (verdict.problem or "")


def test_an_unreadable_row_is_named_not_a_crash(services: Services, clock: MovableClock) -> None:
    _tampered(services, clock)
    _sql(services)("UPDATE {table} SET topic = ? WHERE {id} = ?", ("no.such:Topic", 2))
    if services.view_runner.db.sqlite:
        _sql(services)("UPDATE {table} SET originator_id = ? WHERE {id} = ?", ("zz", 5))
    verdict = _verdict(services)
    assert (verdict.intact, verdict.first_bad_event) == (False, 2)
    if services.view_runner.db.sqlite:
        _sql(services)("UPDATE {table} SET topic = ? WHERE {id} = ?", ("x", 2))
        [notification] = services.events.select_notifications(2, 1)
        assert notification.topic == "x"
        verdict = _verdict(services)
        assert (verdict.intact, verdict.first_bad_event) == (False, 2)


def test_several_followers_do_not_sign_more_often(
    services: Services, clock: MovableClock
) -> None:
    _history(services, clock, residents=6)
    db = services.view_runner.db
    sign = lambda message: ("k", b"s")  # noqa: E731
    followers = [
        Ledger(services.events, db, sign, batch=2, checkpoint_events=8,
               checkpoint_seconds=3600)
        for _ in range(3)
    ]
    while any(f.step() for f in followers):
        pass
    sizes = [c.tree_size for c in followers[0].checkpoints()]
    assert all(b - a >= 8 for a, b in itertools.pairwise(sizes)), sizes
