"""Small authenticated secrets: wrapped keys and sealed personal fields.

Both are AES-256-GCM with a random 96-bit nonce and associated data that
names what the secret belongs to, so a ciphertext moved to another owner or
another event fails to open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import TamperedSecret

_NONCE_BYTES = 12
_VERSION = b"\x01"


def wrap_key(wrapping_key: bytes, key: bytes, *, context: bytes) -> bytes:
    """Encrypt ``key`` under ``wrapping_key``, bound to ``context``."""
    return _seal(wrapping_key, key, b"wrap:" + context)


def unwrap_key(wrapping_key: bytes, wrapped: bytes, *, context: bytes) -> bytes:
    """Recover a key wrapped by :func:`wrap_key` with the same context."""
    return _open(wrapping_key, wrapped, b"wrap:" + context)


def seal_personal_fields(resident_key: bytes, plaintext: bytes, *, context: bytes) -> bytes:
    """Encrypt serialised personal fields under a resident's data key."""
    return _seal(resident_key, plaintext, b"fields:" + context)


def open_personal_fields(resident_key: bytes, sealed: bytes, *, context: bytes) -> bytes:
    """Decrypt personal fields sealed by :func:`seal_personal_fields`."""
    return _open(resident_key, sealed, b"fields:" + context)


def personal_context(topic: str, originator_id: object, originator_version: int) -> bytes:
    """What an event's personal fields are bound to when sealed: its topic, aggregate and
    version, so that sealed fields cannot be moved to another event."""
    return f"{topic}|{originator_id}|{originator_version}".encode()


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, _VERSION + aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
        raise TamperedSecret("sealed secret is malformed")
    nonce = sealed[1 : 1 + _NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, sealed[1 + _NONCE_BYTES :], _VERSION + aad)
    except InvalidTag:
        raise TamperedSecret("sealed secret failed authentication") from None
