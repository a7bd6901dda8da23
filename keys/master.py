"""The master key: the one secret that wraps every other key at rest."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from keys.errors import BadMasterKey, UnknownMasterKey
from keys.files import fsync_dir
from keys.secrets import unwrap_key, wrap_key

MASTER_KEY_BYTES = 32


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit master key; ``key_id`` names it without revealing it."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != MASTER_KEY_BYTES:
            raise BadMasterKey("the master key must be exactly 32 bytes")

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"civicvault/master-key-id\x00" + self.secret).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(MASTER_KEY_BYTES))

    @classmethod
    def from_base64(cls, text: str) -> MasterKey:
        try:
            secret = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise BadMasterKey("the master key is not valid base64") from None
        return cls(secret)

    def to_base64(self) -> str:
        return base64.b64encode(self.secret).decode()


@dataclass(frozen=True)
class MasterKeys:
    """The current master key, plus older ones still accepted while a rotation completes."""

    current: MasterKey
    previous: tuple[MasterKey, ...] = ()

    def by_id(self, key_id: str) -> MasterKey:
        for key in (self.current, *self.previous):
            if key.key_id == key_id:
                return key
        raise UnknownMasterKey(f"no configured master key has id {key_id}")

    def wrap(self, key: bytes, *, context: bytes) -> tuple[bytes, str]:
        """Wrap ``key`` under the current master key; returns (wrapped, master key id)."""
        return wrap_key(self.current.secret, key, context=context), self.current.key_id

    def unwrap(self, wrapped: bytes, master_key_id: str, *, context: bytes) -> bytes:
        return unwrap_key(self.by_id(master_key_id).secret, wrapped, context=context)


def load_or_create_key_file(path: Path) -> tuple[MasterKey, bool]:
    """Read the master key file, creating it (mode 0600) if absent; returns (key, created).

    Two processes starting at once agree on one key: the file is created with a
    hard link that fails if it exists, and the loser reads the winner's key.
    """
    try:
        return MasterKey.from_base64(path.read_text()), False
    except FileNotFoundError:
        pass
    key = MasterKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    _write_private(tmp, key)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return MasterKey.from_base64(path.read_text()), False
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return key, True


def write_key_file(path: Path, key: MasterKey) -> None:
    """Write a key file atomically with mode 0600 (fresh temp file, fsync, rename)."""
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    _write_private(tmp, key)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_private(path: Path, key: MasterKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (key.to_base64() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
