"""Policy versions as events: every published text is kept, and which one is in force."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.domain import event

from vault.aggregate import VaultAggregate

_NAMESPACE = UUID("2f1d6c9e-8b7a-5c3d-9e1f-0a2b3c4d5e6f")
REGISTRY_ID = uuid5(_NAMESPACE, "policy-registry")


class PolicyVersion(VaultAggregate):
    """One published policy: the full model and rule texts, named by their hash."""

    @staticmethod
    def create_id(content_hash: str) -> UUID:
        return uuid5(_NAMESPACE, f"policy:{content_hash}")

    @event("Published")
    def __init__(
        self,
        content_hash: str,
        model_text: str,
        policy_text: str,
        published_at: datetime,
        timestamp: datetime,
    ) -> None:
        self.content_hash = content_hash
        self.model_text = model_text
        self.policy_text = policy_text
        self.published_at = published_at


class PolicyRegistry(VaultAggregate):
    """Which policy version is in force, and since when."""

    @staticmethod
    def create_id() -> UUID:
        return REGISTRY_ID

    @event("Opened")
    def __init__(self, timestamp: datetime) -> None:
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
