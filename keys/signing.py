"""Ed25519 signing keys with key ids, kept wrapped by the master key."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from keys.errors import KeyLayerError
from keys.master import MasterKeys
from keys.store import KeyTable, SigningKeyRecord, wrap_context

log = logging.getLogger("civicvault.keys")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


class SigningKeys:
    """Signing keys by purpose (``receipts``, ``tokens``, ``checkpoints``).

    The newest unretired key signs. Receipts and checkpoints verify under every key,
    retired or not, so rotation never breaks what was already signed; bearer tokens
    only under unretired ones (``public_keys(purpose, retired=False)``), so retiring a
    token key ends the tokens it signed.
    """

    def __init__(
        self,
        table: KeyTable,
        master: MasterKeys,
        *,
        cache_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._master = master
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        # purpose -> (when read, the key that signs for it): a receipt for each consent,
        # and a token for each sign-in, then cost no key-table query. This process's own
        # rotate and retire take effect at once; another's within ``cache_seconds``.
        self._current: dict[str, tuple[float, SigningKey]] = {}
        # Private keys unwrapped before, by key id and wrapped bytes: a receipt signed per
        # consent then costs the key table's query, not an unwrap each time.
        self._unwrapped: dict[tuple[str, bytes], Ed25519PrivateKey] = {}

    def current(self, purpose: str) -> SigningKey:
        """The key that signs for ``purpose`` now, created on first use."""
        now = self._monotonic()
        cached = self._current.get(purpose)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        live = [r for r in self._table.signing_keys(purpose) if r.retired_at is None]
        record = live[-1] if live else self._create(purpose)
        key = SigningKey(record.kid, self._private(record))
        self._current[purpose] = (now, key)
        return key

    def rotate(self, purpose: str) -> SigningKey:
        """Start signing with a fresh key; older ones keep verifying."""
        self._current.clear()
        record = self._create(purpose)
        return SigningKey(record.kid, self._private(record))

    def retire(self, kid: str) -> None:
        self._current.clear()
        self._table.retire_signing_key(kid, datetime.now(UTC))

    def public_keys(self, purpose: str, *, retired: bool = True) -> dict[str, Ed25519PublicKey]:
        """Every key id for ``purpose`` with its public key — each one taken from its
        private key, which only the master key unwraps, so a public key swapped into the
        key table by someone with SQL access is never trusted (it is logged and left out).
        ``retired=False`` leaves out retired keys: for what must stop verifying once its
        key is retired (bearer tokens), unlike receipts and checkpoints, kept for good."""
        keys: dict[str, Ed25519PublicKey] = {}
        for record in self._table.signing_keys(purpose):
            if not retired and record.retired_at is not None:
                continue
            try:
                public = self._private(record).public_key()
            except KeyLayerError:
                log.warning("signing key %s does not unwrap under the master key", record.kid)
                continue
            if public.public_bytes(Encoding.Raw, PublicFormat.Raw) != record.public_key:
                log.warning("signing key %s: the stored public key is not its own", record.kid)
                continue
            keys[record.kid] = public
        return keys

    def _create(self, purpose: str) -> SigningKeyRecord:
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        kid = f"{purpose}-{hashlib.sha256(public).hexdigest()[:16]}"
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        wrapped, master_id = self._master.wrap(raw, context=wrap_context("signing", kid))
        record = SigningKeyRecord(
            kid=kid,
            purpose=purpose,
            public_key=public,
            wrapped_private=wrapped,
            master_key_id=master_id,
            created_at=datetime.now(UTC),
            retired_at=None,
        )
        self._table.add_signing_key(record)
        return record

    def _private(self, record: SigningKeyRecord) -> Ed25519PrivateKey:
        held = (record.kid, record.wrapped_private)
        private = self._unwrapped.get(held)
        if private is None:
            context = wrap_context("signing", record.kid)
            raw = self._master.unwrap(
                record.wrapped_private, record.master_key_id, context=context
            )
            private = self._unwrapped[held] = Ed25519PrivateKey.from_private_bytes(raw)
        return private
