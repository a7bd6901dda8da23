"""What the key layer needs from a table of wrapped keys (kept outside the event log)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

KeyKind = Literal["resident", "signing"]


@dataclass(frozen=True)
class WrappedResidentKey:
    resident_id: str
    wrapped: bytes | None
    master_key_id: str
    created_at: datetime
    shredded_at: datetime | None


@dataclass(frozen=True)
class SigningKeyRecord:
    kid: str
    purpose: str
    public_key: bytes
    wrapped_private: bytes
    master_key_id: str
    created_at: datetime
    retired_at: datetime | None


def wrap_context(kind: KeyKind, owner: str) -> bytes:
    """Associated data that binds a wrapped key to what it is the key of."""
    return f"{kind}:{owner}".encode()


Rewrap = Callable[[KeyKind, str, bytes, str], tuple[bytes, str]]
"""(kind, owner id, wrapped key, master key id) -> (re-wrapped key, new master key id)."""


class KeyTable(Protocol):
    """Storage for wrapped keys. Implementations live in ``adapters``."""

    def add_resident_key(
        self, resident_id: str, wrapped: bytes, master_key_id: str, at: datetime
    ) -> bool:
        """Insert a resident key unless one exists; True if this call inserted it."""
        ...

    def add_resident_keys(self, keys: Sequence[WrappedResidentKey]) -> int:
        """Insert many resident keys in one transaction, skipping existing ones; returns how many
        were inserted."""
        ...

    def resident_key(self, resident_id: str) -> WrappedResidentKey | None: ...

    def resident_keys(self, resident_ids: Sequence[str]) -> list[WrappedResidentKey]:
        """The rows of those residents that have one, in one query."""
        ...

    def shred_resident_key(self, resident_id: str, at: datetime) -> None:
        """Destroy the wrapped key for good, keeping a tombstone that says when."""
        ...

    def add_signing_key(self, record: SigningKeyRecord) -> None: ...

    def signing_keys(self, purpose: str) -> list[SigningKeyRecord]:
        """Every key for ``purpose``, oldest first, retired ones included."""
        ...

    def retire_signing_key(self, kid: str, at: datetime) -> None: ...

    def count_wrapped(self, *, except_under: str | None = None) -> int:
        """How many live wrapped keys (resident and signing) there are, leaving out those
        wrapped by master key ``except_under``."""
        ...

    def rewrap_all(
        self,
        rewrap: Rewrap,
        *,
        except_under: str,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Re-wrap every live key not already under master key ``except_under``, in one
        transaction that keeps other key writers out; returns how many were re-wrapped."""
        ...
