"""Evidence bundles: a resident's access events, the checkpoint that covers them and their
inclusion proofs, signed, and checkable offline with the public key alone.

A bundle is one JSON object (UTF-8)::

    {"format": "civicvault-evidence/1", "resident_id": ..., "since": ..., "until": ...,
     "exported_at": ..., "checkpoint": {tree_size, root_hash, timestamp, key_id, signature},
     "entries": [{"event", "access": {...}, "leaf", "leaf_index", "leaf_hash",
                  "inclusion_path"}, ...],
     "signature": {"key_id": ..., "value": ...}}

The leaf is base64; hashes and signatures are lower-case hex, as in the API (the
checkpoint exactly as ``GET /v1/audit/checkpoints/latest`` serves it). ``signature`` is
Ed25519 by a checkpoint key over the canonical JSON (keys sorted, no spaces, UTF-8) of
every other member. ``access`` is what the entry claims; the checker reads the same fields
from the stored record (``leaf``), whose hash the inclusion proof ties to the signed
checkpoint, and compares them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from projections.ledger import Checkpoint, InclusionProof, Ledger, Signer
from projections.merkle import verify_inclusion
from projections.queries import AccessEntry, Views

FORMAT = "civicvault-evidence/1"
# What an entry claims that the stored record must bear out (personal fields are sealed),
# by the suffix of the record's topic: a fetch names its purpose, an attestation its act.
_COMMON = ("resident_id", "officer", "department", "document_id", "allowed", "reason_codes",
           "policy_version", "request_id", "at")
CLAIMED = {
    ":AccessAttempt.Recorded": (*_COMMON, "purpose"),
    ":AttestationAttempt.Recorded": (*_COMMON, "act"),
}


class BundleError(ValueError):
    """The file is not a bundle this version can read."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise BundleError(f"{what} is not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError(f"{what} is not base64") from None


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _claims(entry: AccessEntry) -> dict[str, Any]:
    claims = {
        "access_id": entry.access_id,
        "resident_id": entry.resident_id,
        "officer": entry.officer,
        "department": entry.department,
        "document_id": entry.document_id,
        "allowed": entry.allowed,
        "reason_codes": list(entry.reason_codes),
        "policy_version": entry.policy_version,
        "request_id": entry.request_id,
        "at": _utc(entry.at),
    }
    if entry.action == "fetch":
        claims["purpose"] = entry.purpose
    else:
        claims["act"] = entry.action
    return claims


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def build_bundle(
    *,
    resident_id: str,
    since: datetime | None,
    until: datetime | None,
    entries: Sequence[AccessEntry],
    checkpoint: Checkpoint,
    proofs: dict[int, InclusionProof],
    leaves: dict[int, bytes],
    sign: Signer,
    now: datetime,
) -> dict[str, Any]:
    """A signed bundle of ``entries``, each proven against ``checkpoint``."""
    body: dict[str, Any] = {
        "format": FORMAT,
        "resident_id": resident_id,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "exported_at": now.isoformat(),
        "checkpoint": checkpoint.to_json(),
        "entries": [
            {
                "event": entry.position,
                "access": _claims(entry),
                "leaf": _b64(leaves[entry.position]),
                "leaf_index": proofs[entry.position].leaf_index,
                "leaf_hash": proofs[entry.position].leaf_hash.hex(),
                "inclusion_path": [h.hex() for h in proofs[entry.position].inclusion_path],
            }
            for entry in entries
        ],
    }
    key_id, signature = sign(canonical(body))
    return {**body, "signature": {"key_id": key_id, "value": signature.hex()}}


class NothingToExport(Exception):
    """The log is empty, or an entry's record is missing from it."""


@dataclass(frozen=True)
class Export:
    bundle: dict[str, Any]
    entries: int
    tree_size: int
    left_out: int  # entries newer than the checkpoint


def export_bundle(
    views: Views,
    ledger: Ledger,
    *,
    resident_id: str,
    since: datetime | None,
    until: datetime | None,
    sign: Signer,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> Export:
    """The resident's access events in ``[since, until)`` as a signed bundle, proven
    against a checkpoint of the ledger brought up to the log and signed now."""
    ledger.catch_up()
    checkpoint = ledger.checkpoint()
    if checkpoint is None:
        raise NothingToExport("the log is empty: there is nothing to export")
    entries: list[AccessEntry] = []
    while page := views.accesses(
        limit=1000, after=entries[-1].position if entries else None,
        resident_id=resident_id, since=since, until=until,
    ):
        entries.extend(page)
    covered = [e for e in entries if e.position <= checkpoint.tree_size]
    proofs: dict[int, InclusionProof] = {}
    leaves: dict[int, bytes] = {}
    for at in range(0, len(covered), 200):
        chunk = [e.position for e in covered[at : at + 200]]
        proofs.update(ledger.inclusions(chunk, checkpoint.tree_size))
        leaves.update(ledger.records(chunk))
        if progress:
            progress(len(proofs))
    missing = [e.position for e in covered if e.position not in leaves]
    if missing:
        raise NothingToExport(
            f"event {missing[0]} is missing from the log: run `civicvault audit verify`"
        )
    bundle = build_bundle(
        resident_id=resident_id, since=since, until=until, entries=covered,
        checkpoint=checkpoint, proofs=proofs, leaves=leaves, sign=sign, now=now,
    )
    return Export(bundle, len(covered), checkpoint.tree_size, len(entries) - len(covered))


@dataclass
class BundleVerdict:
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_bundle(bundle: Any, public_keys: dict[str, Ed25519PublicKey]) -> BundleVerdict:
    """Check a bundle: its signature, its checkpoint's signature, and for every entry that
    the leaf hashes to ``leaf_hash``, that the proof leads from it to the checkpoint's root,
    and that the stored record says what the entry claims. Every check runs, and every
    failure is listed. Raises :class:`BundleError` when the file does not have the shape of
    a bundle at all."""
    body, signature, checkpoint, entries = _shape(bundle)
    verdict = BundleVerdict()
    if not _signed_by(public_keys, signature[0], signature[1], canonical(body)):
        verdict.problems.append(f"the bundle's signature does not verify with key {signature[0]!r}")
    if not checkpoint.verify(public_keys):
        verdict.problems.append(
            f"the checkpoint at {checkpoint.tree_size} events has no valid signature by key "
            f"{checkpoint.key_id!r}"
        )
    for entry in entries:
        verdict.entries += 1
        verdict.problems.extend(_entry_problems(entry, checkpoint, bundle["resident_id"]))
    return verdict


@dataclass(frozen=True)
class _Entry:
    event: int
    claims: dict[str, Any]
    leaf: bytes
    leaf_index: int
    leaf_hash: bytes
    path: list[bytes]


def _shape(
    bundle: Any,
) -> tuple[dict[str, Any], tuple[str, bytes], Checkpoint, list[_Entry]]:
    """The parts of a bundle, every type checked; BundleError naming the first that is off."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"not a {FORMAT} bundle")
    try:
        body = {k: v for k, v in bundle.items() if k != "signature"}
        signed = _object(bundle["signature"], "signature")
        signature = (_text(signed["key_id"], "signature key_id"),
                     _hex(signed["value"], "signature value"))
        _text(bundle["resident_id"], "resident_id")
        checkpoint = Checkpoint.from_json(bundle["checkpoint"])
        if not isinstance(bundle["entries"], list):
            raise BundleError("entries is not a list")
        entries = [_entry(e, n) for n, e in enumerate(bundle["entries"])]
    except KeyError as e:
        raise BundleError(f"the bundle has no {e.args[0]!r}") from None
    except ValueError as e:
        if isinstance(e, BundleError):
            raise
        raise BundleError(str(e)) from None
    return body, signature, checkpoint, entries


def _entry(entry: Any, n: int) -> _Entry:
    what = f"entry {n}"
    entry = _object(entry, what)
    event, index = entry["event"], entry["leaf_index"]
    for name, value in (("event", event), ("leaf_index", index)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise BundleError(f"{what}: {name} is not a whole number")
    path = entry["inclusion_path"]
    if not isinstance(path, list):
        raise BundleError(f"{what}: inclusion_path is not a list")
    return _Entry(
        event,
        _object(entry["access"], f"{what}: access"),
        _unb64(entry["leaf"], f"{what}: leaf"),
        index,
        _hex(entry["leaf_hash"], f"{what}: leaf_hash"),
        [_hex(h, f"{what}: inclusion_path") for h in path],
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BundleError(f"{what} is not an object")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BundleError(f"{what} is not text")
    return value


def _hex(value: Any, what: str) -> bytes:
    try:
        return bytes.fromhex(_text(value, what))
    except ValueError:
        raise BundleError(f"{what} is not hex") from None


def _signed_by(
    public_keys: dict[str, Ed25519PublicKey], key_id: str, signature: bytes, message: bytes
) -> bool:
    key = public_keys.get(key_id)
    if key is None:
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _entry_problems(entry: _Entry, checkpoint: Checkpoint, resident: str) -> list[str]:
    event = entry.event
    if hashlib.sha256(b"\x00" + entry.leaf).digest() != entry.leaf_hash:
        return [f"event {event}: the leaf does not hash to its leaf_hash"]
    if entry.leaf_index != event - 1 or not verify_inclusion(
        entry.leaf_hash, event - 1, checkpoint.tree_size, entry.path, checkpoint.root_hash
    ):
        return [f"event {event}: the inclusion proof does not lead to the checkpoint's root"]
    stored = _stored_access(entry.leaf)
    if stored is None:
        return [f"event {event}: the leaf is not an access event"]
    problems = [
        f"event {event}: the entry says {name} is {entry.claims.get(name)!r}, the record {value!r}"
        for name, value in stored.items()
        if entry.claims.get(name) != value
    ]
    if entry.claims.get("resident_id") != resident:
        problems.append(f"event {event}: the entry is about another resident")
    return problems


def _stored_access(leaf: bytes) -> dict[str, Any] | None:
    """The clear fields of an access event's stored record (a fetch's or an attestation's),
    from its leaf data."""
    length = int.from_bytes(leaf[:2], "big")
    topic = leaf[2 : 2 + length].decode(errors="replace")
    claimed = next((c for suffix, c in CLAIMED.items() if topic.endswith(suffix)), None)
    if claimed is None or len(leaf) < 26 + length:
        return None
    originator = UUID(bytes=leaf[2 + length : 18 + length])
    try:
        state = json.loads(leaf[26 + length :])
    except ValueError:
        return None  # a compressed or enciphered store: nothing to compare in clear
    if not isinstance(state, dict):
        return None
    fields: dict[str, Any] = {"access_id": str(originator)}
    for name in claimed:
        value = state.get(name)
        if isinstance(value, dict):  # eventsourcing's typed values
            try:
                value = (
                    str(UUID(value["_data_"]))
                    if value.get("_type_") == "uuid_hex"
                    else _utc(datetime.fromisoformat(value["_data_"]))
                )
            except (KeyError, TypeError, ValueError, OverflowError):
                value = repr(value)
        fields[name] = value
    return fields
