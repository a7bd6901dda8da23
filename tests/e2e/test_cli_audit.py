"""The audit commands, run as real processes on a real data dir: ledger verification,
re-adjudication, and evidence bundles exported and checked offline."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.settings import Settings
from adapters.wiring import open_services
from keys.tokens import public_jwk
from tests.e2e.test_cli import _one_line_error, civicvault
from tests.integration.test_readjudication import _history
from tests.support import MovableClock
from vault.access import AccessAttempt


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A vault with five recorded fetches (four on r1, one on r2), all signed into the
    ledger, and its checkpoint keys in ``keys.json`` as the HTTP API publishes them."""
    services = open_services(Settings(data_dir=tmp_path))
    try:
        _history(services, MovableClock())
        services.ledger.catch_up()
        services.ledger.checkpoint()
        keys = services.signing.public_keys("checkpoints")
        (tmp_path / "keys.json").write_text(
            json.dumps({"keys": [public_jwk(kid, key) for kid, key in keys.items()]})
        )
    finally:
        services.close()
    return tmp_path


def _run(data_dir: Path, *args: str) -> Any:
    return civicvault("audit", *args, "--data-dir", str(data_dir))


def test_verify_passes_then_names_the_event_whose_bytes_changed(data_dir: Path) -> None:
    intact = _run(data_dir, "verify")
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("intact: ")
    assert "events verified" in intact.stderr  # progress

    with sqlite3.connect(data_dir / "vault.sqlite3") as db:
        db.execute("UPDATE stored_events SET state = state || ' ' WHERE rowid = 4")
    tampered = _run(data_dir, "verify")
    assert tampered.returncode == 1
    assert "TAMPERED: event 4 differs" in tampered.stdout


def test_readjudicate_finds_nothing_then_flags_a_forged_allowed_access(data_dir: Path) -> None:
    honest = _run(data_dir, "readjudicate")
    assert honest.returncode == 0, honest.stderr
    assert "re-decided 5 accesses (0 of erased residents unverifiable)" in honest.stdout
    assert ": 0 mismatches" in honest.stdout

    services = open_services(Settings(data_dir=data_dir))
    try:
        [document_id] = services.residents.resident("r2").document_ids
        forged_at = services.store.save(AccessAttempt.record(
            resident_id="r2", officer="officer-li", department="civil-affairs",
            document_id=document_id, doc_type="id-card", purpose="subsistence-allowance",
            consent_id=None, grade="unrated", trust_level="C", allowed=True, reason_codes=[],
            reasons=[], policy_version=services.policies.current_version(), rule=None,
            request_id="forged", at=datetime.now(UTC),
        ))
    finally:
        services.close()
    flagged = _run(data_dir, "readjudicate")
    assert flagged.returncode == 1
    assert f"MISMATCH event {forged_at} " in flagged.stdout
    assert "recorded allowed [], decided again denied ['no-consent']" in flagged.stdout
    window = _run(data_dir, "readjudicate", "--until", "2000-01-01T00:00:00+08:00")
    assert window.returncode == 0
    assert "re-decided 0 accesses" in window.stdout


def test_an_exported_bundle_verifies_offline_and_any_edit_is_caught(data_dir: Path) -> None:
    out = data_dir / "r1-evidence.json"
    exported = _run(data_dir, "export", "--resident", "r1", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "wrote 4 access events of r1" in exported.stdout
    bundle = json.loads(out.read_text())
    assert [e["access"]["allowed"] for e in bundle["entries"]] == [True, False, True, False]

    offline = civicvault("audit", "verify-bundle", str(out), "--keys", str(data_dir / "keys.json"))
    assert offline.returncode == 0, offline.stderr + offline.stdout
    assert "intact: 4 access events of r1" in offline.stdout
    on_site = _run(data_dir, "verify-bundle", str(out))
    assert on_site.returncode == 0, on_site.stdout

    edits = {
        "claim": lambda b: b["entries"][1]["access"].update(allowed=True),
        "leaf": lambda b: b["entries"][0].update(leaf=b["entries"][2]["leaf"]),
        "path": lambda b: b["entries"][0]["inclusion_path"].reverse(),
        "root": lambda b: b["checkpoint"].update(root_hash="00" * 32),
        "dropped": lambda b: b["entries"].pop(),
    }
    for name, edit in edits.items():
        copy = json.loads(out.read_text())
        edit(copy)
        edited = data_dir / f"edited-{name}.json"
        edited.write_text(json.dumps(copy))
        result = civicvault(
            "audit", "verify-bundle", str(edited), "--keys", str(data_dir / "keys.json")
        )
        assert result.returncode == 1, (name, result.stdout)
        assert "BAD: the bundle's signature does not verify" in result.stdout, name
    claim = civicvault(
        "audit", "verify-bundle", str(data_dir / "edited-claim.json"),
        "--keys", str(data_dir / "keys.json"),
    )
    assert "the entry says allowed is True, the record False" in claim.stdout


def test_a_bundle_checked_with_other_keys_fails(data_dir: Path, tmp_path_factory: Any) -> None:
    out = data_dir / "bundle.json"
    assert _run(data_dir, "export", "--resident", "r1", str(out)).returncode == 0
    other = tmp_path_factory.mktemp("other")
    services = open_services(Settings(data_dir=other))
    try:
        keys = {"keys": [public_jwk(k.kid, k.public_key) for k in [
            services.signing.current("checkpoints")
        ]]}
    finally:
        services.close()
    (other / "keys.json").write_text(json.dumps(keys))
    result = civicvault("audit", "verify-bundle", str(out), "--keys", str(other / "keys.json"))
    assert result.returncode == 1
    assert "no valid signature" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "--resident", "r1", "--since", "yesterday", "x.json"], "not an RFC 3339"),
        (["export", "--resident", "r1", "--since", "2026-01-01T00:00:00", "x.json"], "offset"),
        (["export", "--resident", "no spaces allowed", "x.json"], "resident"),
        (["export", "x.json"], "--resident"),
        (["verify-bundle", "missing.json"], "cannot read"),
        (["readjudicate", "--since", "2026-13-01T00:00:00Z"], "not an RFC 3339"),
    ],
)
def test_bad_audit_input_is_one_line_and_exit_code_2(
    data_dir: Path, args: list[str], message: str
) -> None:
    line = _one_line_error(_run(data_dir, *args))
    assert message in line


def test_a_file_that_is_not_a_bundle_is_refused(data_dir: Path) -> None:
    junk = data_dir / "junk.json"
    junk.write_text(json.dumps({"format": "something else"}))
    line = _one_line_error(_run(data_dir, "verify-bundle", str(junk)))
    assert "not a civicvault-evidence/1 bundle" in line


def test_verify_against_keys_and_a_checkpoint_saved_elsewhere(data_dir: Path) -> None:
    services = open_services(Settings(data_dir=data_dir))
    try:
        saved = services.ledger.latest_checkpoint()
        assert saved is not None
    finally:
        services.close()
    (data_dir / "head.json").write_text(json.dumps([saved.to_json()]))
    anchored = _run(
        data_dir, "verify", "--keys", str(data_dir / "keys.json"),
        "--checkpoint", str(data_dir / "head.json"),
    )
    assert anchored.returncode == 0, anchored.stdout + anchored.stderr
    assert "signed checkpoints verified" in anchored.stdout

    # An intruder rewrites event 4 and every ledger table to match, without the keys.
    with sqlite3.connect(data_dir / "vault.sqlite3") as db:
        db.execute("UPDATE stored_events SET state = state || x'20' WHERE rowid = 4")
        db.execute("DELETE FROM cv_ledger_nodes")
        db.execute("DELETE FROM cv_ledger_checkpoints")
        db.execute("UPDATE cv_ledger_state SET size = 0")
    services = open_services(Settings(data_dir=data_dir))
    try:
        services.ledger.catch_up()
        services.ledger.checkpoint()  # signed by the vault itself, over the forged log
    finally:
        services.close()
    fooled = _run(data_dir, "verify")
    assert fooled.returncode == 0  # the database alone cannot tell
    caught = _run(data_dir, "verify", "--checkpoint", str(data_dir / "head.json"))
    assert caught.returncode == 1
    assert f"TAMPERED: the tree of {saved.tree_size} events does not match" in caught.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "cannot read"), ('{"tree_size": 0}', "cannot read"), ("[]", "no checkpoint")],
)
def test_a_bad_checkpoint_file_is_one_line_and_exit_code_2(
    data_dir: Path, content: str, message: str
) -> None:
    (data_dir / "head.json").write_text(content)
    result = _run(data_dir, "verify", "--checkpoint", str(data_dir / "head.json"))
    assert message in _one_line_error(result)
