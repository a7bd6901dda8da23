"""Published texts the vault runs on, as events: every version kept, named by its hash, and
which one is in force. The catalogue is published this way (the policy, older, has its
own pair of aggregates in :mod:`vault.policies`, of the same shape)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID, uuid5

from eventsourcing.domain import event

from vault.aggregate import VaultAggregate

_NAMESPACE = UUID("6b0f3c1e-2d4a-5e7f-8a9b-1c2d3e4f5a6b")
Subject = Literal["catalogue"]
"""What a published text is."""


class Publication(VaultAggregate):
    """One published version of a text, named by its content hash."""

    @staticmethod
    def create_id(subject: Subject, content_hash: str) -> UUID:
        return uuid5(_NAMESPACE, f"{subject}:{content_hash}")

    @event("Published")
    def __init__(
        self, subject: Subject, content_hash: str, text: str, published_at: datetime,
        timestamp: datetime,
    ) -> None:
        self.subject = subject
        self.content_hash = content_hash
        self.text = text
        self.published_at = published_at


class InForce(VaultAggregate):
    """Which published version of a subject is in force, and since when."""

    @staticmethod
    def create_id(subject: Subject) -> UUID:
        return uuid5(_NAMESPACE, f"in-force:{subject}")

    @event("Opened")
    def __init__(self, subject: Subject, timestamp: datetime) -> None:
        self.subject = subject
        self.history: list[tuple[str, datetime]] = []

    @property
    def current(self) -> str | None:
        return self.history[-1][0] if self.history else None

    def activate(self, version: str, at: datetime) -> None:
        """Put a published version in force (a no-op if it already is)."""
        if version != self.current:
            self._activated(version, at, timestamp=at)

    @event("Activated")
    def _activated(self, version: str, at: datetime, timestamp: datetime) -> None:
        self.history.append((version, at))
