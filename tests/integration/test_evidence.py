"""Evidence bundles: each check inside a bundle catches its own kind of edit even when the
edited bundle is signed again with the genuine key, and malformed files are refused."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.wiring import Services
from projections.evidence import (
    BundleError,
    NothingToExport,
    canonical,
    export_bundle,
    verify_bundle,
)
from projections.ledger import leaf_of
from tests.integration.test_readjudication import _history
from tests.support import MovableClock


def _signer(services: Services) -> Callable[[bytes], tuple[str, bytes]]:
    key = services.signing.current("checkpoints")
    return lambda message: (key.kid, key.private_key.sign(message))


def _bundle(services: Services, clock: MovableClock) -> dict[str, Any]:
    _history(services, clock)
    services.view_runner.catch_up()
    exported = export_bundle(
        services.views, services.ledger, resident_id="r1", since=None, until=None,
        sign=_signer(services), now=datetime.now(UTC),
    )
    assert (exported.entries, exported.left_out) == (4, 0)
    return exported.bundle


def _resigned(services: Services, bundle: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in bundle.items() if k != "signature"}
    key_id, signature = _signer(services)(canonical(body))
    return {**body, "signature": {"key_id": key_id, "value": signature.hex()}}


def _problems(services: Services, bundle: dict[str, Any]) -> list[str]:
    return verify_bundle(bundle, services.signing.public_keys("checkpoints")).problems


def test_an_exported_bundle_verifies(services: Services, clock: MovableClock) -> None:
    bundle = _bundle(services, clock)
    assert _problems(services, json.loads(json.dumps(bundle))) == []
    assert bundle["checkpoint"] == services.ledger.latest_checkpoint().to_json()  # type: ignore[union-attr]


EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "a claim": (
        lambda b: b["entries"][1]["access"].update(allowed=True),
        "the entry says allowed is True, the record False",
    ),
    "a leaf": (
        lambda b: b["entries"][0].update(leaf=b["entries"][2]["leaf"]),
        "the leaf does not hash to its leaf_hash",
    ),
    "a leaf with its hash": (
        lambda b: b["entries"][0].update(
            leaf=b["entries"][2]["leaf"], leaf_hash=b["entries"][2]["leaf_hash"]
        ),
        "the inclusion proof does not lead to the checkpoint's root",
    ),
    "a path": (
        lambda b: b["entries"][0]["inclusion_path"].reverse(),
        "the inclusion proof does not lead to the checkpoint's root",
    ),
    "an index": (
        lambda b: b["entries"][0].update(leaf_index=b["entries"][0]["leaf_index"] + 1),
        "the inclusion proof does not lead to the checkpoint's root",
    ),
    "the checkpoint's root": (
        lambda b: b["checkpoint"].update(root_hash="00" * 32),
        "no valid signature",
    ),
    "the resident": (
        lambda b: b.update(resident_id="r2"),
        "the entry is about another resident",
    ),
}


@pytest.mark.parametrize("edit", EDITS)
def test_each_edit_is_caught_by_its_own_check_even_when_signed_again(
    services: Services, clock: MovableClock, edit: str
) -> None:
    bundle = _bundle(services, clock)
    change, expected = EDITS[edit]
    edited = copy.deepcopy(bundle)
    change(edited)
    unsigned = _problems(services, edited)
    assert any("the bundle's signature does not verify" in p for p in unsigned)
    problems = _problems(services, _resigned(services, edited))
    assert any(expected in p for p in problems), problems
    assert not any("the bundle's signature" in p for p in problems)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(format="other"), "not a civicvault-evidence/1 bundle"),
        (lambda b: b.pop("entries"), "no 'entries'"),
        (lambda b: b.update(entries={}), "entries is not a list"),
        (lambda b: b["checkpoint"].update(tree_size=-1), "tree_size must be a positive"),
        (lambda b: b["checkpoint"].update(tree_size=2**64), "tree_size must be a positive"),
        (lambda b: b["checkpoint"].update(timestamp="1969-01-01T00:00:00+00:00"), "out of range"),
        (lambda b: b["checkpoint"].update(root_hash="xyz"), "not a checkpoint"),
        (lambda b: b.update(checkpoint=[]), "a checkpoint is a JSON object"),
        (lambda b: b["entries"][0].update(access=[]), "entry 0: access is not an object"),
        (lambda b: b["entries"][0].update(event="7"), "entry 0: event is not a whole number"),
        (lambda b: b["entries"][0].update(leaf=7), "entry 0: leaf is not base64 text"),
        (lambda b: b["entries"][0].update(leaf_hash="zz"), "entry 0: leaf_hash is not hex"),
        (lambda b: b["entries"][0].update(inclusion_path="ab"), "inclusion_path is not a list"),
        (lambda b: b.update(signature=None), "signature is not an object"),
    ],
)
def test_a_malformed_bundle_is_refused_with_what_is_wrong(
    services: Services, clock: MovableClock, change: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    bundle = copy.deepcopy(_bundle(services, clock))
    change(bundle)
    with pytest.raises(BundleError, match=message):
        verify_bundle(bundle, services.signing.public_keys("checkpoints"))


def test_a_leaf_that_is_not_an_access_event_is_caught(
    services: Services, clock: MovableClock
) -> None:
    bundle = _bundle(services, clock)
    [first] = services.events.select_notifications(1, 1)  # the policy's publication
    proof = services.ledger.inclusion(1, bundle["checkpoint"]["tree_size"])
    bundle["entries"][0].update(
        event=1, leaf=base64.b64encode(leaf_of(first)).decode(), leaf_index=0,
        leaf_hash=proof.leaf_hash.hex(), inclusion_path=[h.hex() for h in proof.inclusion_path],
    )
    problems = _problems(services, _resigned(services, bundle))
    assert "event 1: the leaf is not an access event" in problems


def test_an_empty_log_has_nothing_to_export(services: Services) -> None:
    with pytest.raises(NothingToExport, match="empty"):
        export_bundle(
            services.views, services.ledger, resident_id="r1", since=None, until=None,
            sign=_signer(services), now=datetime.now(UTC),
        )
