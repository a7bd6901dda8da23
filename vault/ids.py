"""Identifiers and the checks every input identifier passes."""

from __future__ import annotations

import functools
import re
import uuid

from vault.errors import InvalidInput

_RESIDENT_NAMESPACE = uuid.UUID("5a0b6d8e-3c1f-5e2a-9b47-c1a1c0f1e1d0")
RESIDENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
"""A UUID in its canonical 8-4-4-4-12 form (no braces, no ``urn:uuid:``, no bare hex)."""
_RESIDENT_ID = re.compile(RESIDENT_ID_PATTERN.strip("^$"))
_UUID = re.compile(UUID_PATTERN.strip("^$"))
_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MAX_IDENTIFIER = 64


@functools.lru_cache(maxsize=65_536)
def resident_aggregate_id(resident_id: str) -> uuid.UUID:
    """The aggregate id of a resident: derived, so registration is idempotent."""
    return uuid.uuid5(_RESIDENT_NAMESPACE, resident_id)


def check_resident_id(value: object) -> str:
    """A resident id: 1–64 characters of letters, digits, '.', '_' or '-'."""
    if not isinstance(value, str) or not _RESIDENT_ID.fullmatch(value):
        raise InvalidInput(
            "resident_id",
            "must be 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


def check_identifier(field: str, value: object) -> str:
    """Department, document type and purpose ids: lower-case ASCII words joined by hyphens."""
    if (
        not isinstance(value, str)
        or len(value) > _MAX_IDENTIFIER
        or not _IDENTIFIER.fullmatch(value)
    ):
        raise InvalidInput(field, "must be lower-case ASCII words joined by hyphens, e.g. id-card")
    return value


def parse_uuid(field: str, value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise InvalidInput(field, "is not a valid id (a UUID, 8-4-4-4-12 hex digits)")
    return uuid.UUID(value)
