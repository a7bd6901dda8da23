"""Evidence bundles: a resident's access events, the checkpoint that covers them and their
inclusion proofs, signed, and checkable offline with the public key alone.

A bundle is one JSON object (UTF-8)::

    {"format": "civicvault-evidence/1", "resident_id": ..., "since": ..., "until": ...,
     "exported_at": ..., "checkpoint": {tree_size, root_hash, timestamp, key_id, signature},
     "entries": [{"event", "access": {...}, "leaf", "leaf_index", "leaf_hash",
                  "inclusion_path"}, ...],
     "signature": {"key_id": ..., "value": ...}}

Bytes are base64. ``signature`` is Ed25519 by a checkpoint key over the canonical JSON
(keys sorted, no spaces, UTF-8) of every other member. ``access`` is what the entry
claims; the checker reads the same fields from the stored record (``leaf``), whose hash
the inclusion proof ties to the signed checkpoint, and compares them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from projections.ledger import Checkpoint, InclusionProof, Signer, checkpoint_message
from projections.merkle import verify_inclusion
from projections.queries import AccessEntry

FORMAT = "civicvault-evidence/1"
ACCESS_TOPIC_SUFFIX = ":AccessAttempt.Recorded"
# What an entry claims that the stored record must bear out (personal fields are sealed).
CLAIMED = ("resident_id", "officer", "department", "document_id", "purpose", "allowed",
           "reason_codes", "policy_version", "request_id", "at")


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
    return {
        "access_id": entry.access_id,
        "resident_id": entry.resident_id,
        "officer": entry.officer,
        "department": entry.department,
        "document_id": entry.document_id,
        "purpose": entry.purpose,
        "allowed": entry.allowed,
        "reason_codes": list(entry.reason_codes),
        "policy_version": entry.policy_version,
        "request_id": entry.request_id,
        "at": _utc(entry.at),
    }


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
        "checkpoint": {
            "tree_size": checkpoint.tree_size,
            "root_hash": _b64(checkpoint.root_hash),
            "timestamp": checkpoint.timestamp.isoformat(),
            "key_id": checkpoint.key_id,
            "signature": _b64(checkpoint.signature),
        },
        "entries": [
            {
                "event": entry.position,
                "access": _claims(entry),
                "leaf": _b64(leaves[entry.position]),
                "leaf_index": proofs[entry.position].leaf_index,
                "leaf_hash": _b64(proofs[entry.position].leaf_hash),
                "inclusion_path": [_b64(h) for h in proofs[entry.position].inclusion_path],
            }
            for entry in entries
        ],
    }
    key_id, signature = sign(canonical(body))
    return {**body, "signature": {"key_id": key_id, "value": _b64(signature)}}


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
    and that the stored record says what the entry claims. Raises :class:`BundleError` when
    the file is not a readable bundle at all."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"not a {FORMAT} bundle")
    verdict = BundleVerdict()
    try:
        signed = bundle["signature"]
        body = {k: v for k, v in bundle.items() if k != "signature"}
        if not _signed_by(public_keys, signed["key_id"], _unb64(signed["value"], "signature"),
                          canonical(body)):
            verdict.problems.append(
                f"the bundle's signature does not verify with key {signed['key_id']!r}"
            )
        checkpoint = bundle["checkpoint"]
        size, root = int(checkpoint["tree_size"]), _unb64(checkpoint["root_hash"], "root_hash")
        message = checkpoint_message(size, datetime.fromisoformat(checkpoint["timestamp"]), root)
        if not _signed_by(public_keys, checkpoint["key_id"],
                          _unb64(checkpoint["signature"], "checkpoint signature"), message):
            verdict.problems.append(
                f"the checkpoint at {size} events has no valid signature by key "
                f"{checkpoint['key_id']!r}"
            )
        for entry in bundle["entries"]:
            verdict.entries += 1
            verdict.problems.extend(_entry_problems(entry, size, root, bundle["resident_id"]))
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, BundleError):
            raise
        raise BundleError(f"the bundle is missing or mangles a member: {e!r}") from None
    return verdict


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


def _entry_problems(entry: dict[str, Any], size: int, root: bytes, resident: str) -> list[str]:
    event = int(entry["event"])
    leaf = _unb64(entry["leaf"], f"event {event}'s leaf")
    leaf_hash = _unb64(entry["leaf_hash"], f"event {event}'s leaf_hash")
    path = [_unb64(h, f"event {event}'s path") for h in entry["inclusion_path"]]
    if hashlib.sha256(b"\x00" + leaf).digest() != leaf_hash:
        return [f"event {event}: the leaf does not hash to its leaf_hash"]
    if int(entry["leaf_index"]) != event - 1 or not verify_inclusion(
        leaf_hash, event - 1, size, path, root
    ):
        return [f"event {event}: the inclusion proof does not lead to the checkpoint's root"]
    claims = entry["access"]
    stored = _stored_access(leaf)
    if stored is None:
        return [f"event {event}: the leaf is not an access event"]
    problems = [
        f"event {event}: the entry says {name} is {claims.get(name)!r}, the record {value!r}"
        for name, value in stored.items()
        if claims.get(name) != value
    ]
    if claims.get("resident_id") != resident:
        problems.append(f"event {event}: the entry is about another resident")
    return problems


def _stored_access(leaf: bytes) -> dict[str, Any] | None:
    """The clear fields of an access event's stored record, from its leaf data."""
    length = int.from_bytes(leaf[:2], "big")
    topic = leaf[2 : 2 + length].decode(errors="replace")
    if not topic.endswith(ACCESS_TOPIC_SUFFIX):
        return None
    originator = UUID(bytes=leaf[2 + length : 18 + length])
    try:
        state = json.loads(leaf[26 + length :])
    except ValueError:
        return None  # a compressed or enciphered store: nothing to compare in clear
    fields: dict[str, Any] = {"access_id": str(originator)}
    for name in CLAIMED:
        value = state.get(name)
        if isinstance(value, dict) and "_data_" in value:  # eventsourcing's typed values
            value = (
                str(UUID(value["_data_"]))
                if value.get("_type_") == "uuid_hex"
                else _utc(datetime.fromisoformat(value["_data_"]))
            )
        fields[name] = value
    return fields
