"""The ledger over HTTP: checkpoints verify with the published keys, proofs verify with the
plain verifiers, a resident can check each access-log entry, and re-adjudication answers."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.samples import sample_pdf
from projections.merkle import verify_consistency, verify_inclusion
from tests.e2e.conftest import LiveApi

CIVIL = {"purpose": "subsistence-allowance"}


def _b(text: str) -> bytes:
    """Hashes and signatures are lower-case hex (DESIGN.md)."""
    assert text == text.lower()
    return bytes.fromhex(text)


def _checkpoint_verifies(checkpoint: dict[str, Any], keys: dict[str, Any]) -> bool:
    """Check a signed tree head as an outsider would: the public key and the documented
    message layout, nothing of the vault's code."""
    jwk = next(k for k in keys["keys"] if k["kid"] == checkpoint["key_id"])
    key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="))
    millis = round(datetime.fromisoformat(checkpoint["timestamp"]).timestamp() * 1000)
    message = (
        b"civicvault checkpoint v1\n"
        + checkpoint["tree_size"].to_bytes(8, "big")
        + millis.to_bytes(8, "big")
        + _b(checkpoint["root_hash"])
    )
    try:
        key.verify(_b(checkpoint["signature"]), message)
    except Exception:
        return False
    return True


def _world(api: LiveApi) -> tuple[httpx.Client, str]:
    me = api.client("resident", "wang-li")
    document = me.post(
        "/v1/me/documents",
        data={"doc_type": "id-card", "title": "居民身份证"},
        files={"file": ("id.pdf", sample_pdf(), "application/pdf")},
    ).json()["document_id"]
    me.post("/v1/me/consents", json={
        "department": "civil-affairs", "doc_types": ["id-card"], **CIVIL,
        "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    })
    url = f"/v1/residents/wang-li/documents/{document}/content"
    officer = api.client("officer", "officer-li", "civil-affairs")
    assert officer.get(url, params=CIVIL).status_code == 200
    stranger = api.client("officer", "officer-zhou", "housing")
    assert stranger.get(url, params=CIVIL).status_code == 403
    return me, document


def test_checkpoints_and_proofs_verify_outside_the_vault(api: LiveApi) -> None:
    me, _ = _world(api)
    auditor = api.client("auditor", "auditor-sun")
    keys = httpx.get(f"{api.base_url}/.well-known/checkpoint-keys.json").json()
    api.services.ledger.catch_up()
    api.services.ledger.checkpoint()
    first = auditor.get("/v1/audit/checkpoints/latest").json()
    assert _checkpoint_verifies(first, keys)
    forged = {**first, "tree_size": first["tree_size"] + 1}
    assert not _checkpoint_verifies(forged, keys)

    for event in (1, first["tree_size"]):
        proof = auditor.get(
            "/v1/audit/proofs/inclusion", params={"event": event, "size": first["tree_size"]}
        ).json()
        assert proof["leaf_index"] == event - 1
        path = [_b(h) for h in proof["inclusion_path"]]
        root = _b(first["root_hash"])
        assert verify_inclusion(_b(proof["leaf_hash"]), event - 1, first["tree_size"], path, root)
        assert not verify_inclusion(
            hashlib.sha256(b"\x00forged").digest(), event - 1, first["tree_size"], path, root
        )

    me.post("/v1/me/consents", json={
        "department": "housing", "doc_types": ["id-card"], "purpose": "housing-subsidy",
        "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    })
    api.services.ledger.catch_up()
    api.services.ledger.checkpoint()
    second = auditor.get("/v1/audit/checkpoints/latest").json()
    assert second["tree_size"] > first["tree_size"]
    consistency = auditor.get(
        "/v1/audit/proofs/consistency",
        params={"from": first["tree_size"], "to": second["tree_size"]},
    ).json()
    assert verify_consistency(
        first["tree_size"], second["tree_size"], _b(first["root_hash"]),
        _b(second["root_hash"]), [_b(h) for h in consistency["consistency_path"]],
    )


def test_each_access_log_entry_carries_its_inclusion(api: LiveApi) -> None:
    me, _ = _world(api)
    before = me.get("/v1/me/access-log").json()
    assert len(before["items"]) == 2
    api.services.ledger.catch_up()
    api.services.ledger.checkpoint()
    page = me.get("/v1/me/access-log").json()
    keys = httpx.get(f"{api.base_url}/.well-known/checkpoint-keys.json").json()
    checkpoint = page["checkpoint"]
    assert _checkpoint_verifies(checkpoint, keys)
    for entry in page["items"]:
        ledger = entry["ledger"]
        leaf = base64.b64decode(ledger["leaf"])
        assert hashlib.sha256(b"\x00" + leaf).digest() == _b(ledger["leaf_hash"])
        topic_length = int.from_bytes(leaf[:2], "big")
        assert leaf[2 : 2 + topic_length].endswith(b"AccessAttempt.Recorded")
        assert UUID(bytes=leaf[2 + topic_length : 18 + topic_length]) == UUID(entry["access_id"])
        assert ledger["leaf_index"] == entry["event"] - 1
        assert ledger["tree_size"] == checkpoint["tree_size"]
        assert verify_inclusion(
            _b(ledger["leaf_hash"]), ledger["leaf_index"], ledger["tree_size"],
            [_b(h) for h in ledger["inclusion_path"]], _b(checkpoint["root_hash"]),
        )


def test_an_entry_newer_than_the_checkpoint_has_no_proof_yet(api: LiveApi) -> None:
    me = api.client("resident", "zhao-lei")
    page = me.get("/v1/me/access-log").json()
    assert page["items"] == []
    me, document = _world(api)
    api.services.ledger.catch_up()
    api.services.ledger.checkpoint()
    officer = api.client("officer", "officer-li", "civil-affairs")
    officer.get(f"/v1/residents/wang-li/documents/{document}/content", params=CIVIL)
    newest, *older = me.get("/v1/me/access-log").json()["items"]
    assert newest["ledger"] is None
    assert all(entry["ledger"] is not None for entry in older)


def test_proof_requests_outside_the_ledger_are_clear_4xx(api: LiveApi) -> None:
    _world(api)
    auditor = api.client("auditor", "auditor-sun")
    assert auditor.get("/v1/audit/checkpoints/latest").status_code in (200, 404)
    api.services.ledger.catch_up()
    held = api.services.ledger.size()
    cases = [
        ("/v1/audit/proofs/inclusion", {"event": 0, "size": held}, 422),
        ("/v1/audit/proofs/inclusion", {"event": 2, "size": 1}, 422),
        ("/v1/audit/proofs/inclusion", {"event": 1, "size": held + 1}, 404),
        ("/v1/audit/proofs/inclusion", {"event": "x", "size": held}, 422),
        ("/v1/audit/proofs/consistency", {"from": 2, "to": 1}, 422),
        ("/v1/audit/proofs/consistency", {"from": 1, "to": held + 1}, 404),
    ]
    for path, params, status in cases:
        response = auditor.get(path, params=params)
        assert response.status_code == status, (path, params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_readjudication_over_http(api: LiveApi) -> None:
    _world(api)
    auditor = api.client("auditor", "auditor-sun")
    report = auditor.post("/v1/audit/readjudicate").json()
    assert (report["checked"], report["mismatches"], report["truncated"]) == (2, [], False)
    window = auditor.post(
        "/v1/audit/readjudicate",
        params={"since": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
    ).json()
    assert window["checked"] == 0
    bad = auditor.post("/v1/audit/readjudicate", params={"since": "2026-01-01T00:00:00"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def _gauge(text: str, name: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_metrics_show_how_far_the_ledger_and_its_checkpoints_trail(api: LiveApi) -> None:
    _world(api)
    api.services.ledger.catch_up()
    api.services.ledger.checkpoint()
    metrics = httpx.get(f"{api.base_url}/metrics").text
    assert _gauge(metrics, "civicvault_ledger_lag_events") == 0
    assert _gauge(metrics, "civicvault_ledger_unsigned_events") == 0
    db = api.services.view_runner.db
    with db.transaction() as run:  # as if the ledger had stopped three events back
        run(f"UPDATE {db.table('cv_ledger_state')} SET size = size - 3")
    metrics = httpx.get(f"{api.base_url}/metrics").text
    assert _gauge(metrics, "civicvault_ledger_lag_events") == 3
