"""Publishing policy versions and getting the decision point for any of them."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from policy.decision import DecisionPoint
from policy.rules import PolicyError, default_policy_text, model_text
from vault.base import VaultBase
from vault.errors import InvalidPolicy, VaultError
from vault.policies import REGISTRY_ID, PolicyRegistry, PolicyVersion

POLICY_REFRESH_SECONDS = 1.0
"""How soon a policy published by another process takes effect here."""
_CACHED_POINTS = 8


class UnknownPolicyVersion(VaultError):
    code = "unknown-policy-version"


class PolicyCommands(VaultBase):
    def __init__(self, **kwargs: Any) -> None:
        self._policy_lock = threading.Lock()
        self._point_cache: OrderedDict[str, DecisionPoint] = OrderedDict()
        self._current: tuple[float, str] | None = None
        super().__init__(**kwargs)

    def publish_policy(self, policy_text: str) -> str:
        """Check, record and put in force a policy file; returns its version (content hash).

        A bad file is refused with its first bad line and changes nothing.
        """
        try:
            point = DecisionPoint.from_text(policy_text, model_text())
        except PolicyError as e:
            raise InvalidPolicy(e.line, e.reason) from None

        def publish() -> None:
            changed: list[PolicyVersion | PolicyRegistry] = []
            if not self._has(PolicyVersion.create_id(content_hash=point.version)):
                changed.append(
                    PolicyVersion(
                        content_hash=point.version,
                        model_text=model_text(),
                        policy_text=policy_text,
                        published_at=self.clock.now(),
                    )
                )
            registry = self.policy_registry() or PolicyRegistry()
            registry.activate(point.version, self.clock.now())
            changed.append(registry)
            self.save(*changed)

        self._retrying(publish)
        with self._policy_lock:
            self._point_cache[point.version] = point
            self._current = (time.monotonic(), point.version)
        return point.version

    def policy_registry(self) -> PolicyRegistry | None:
        try:
            registry: PolicyRegistry = self.repository.get(REGISTRY_ID)
        except AggregateNotFoundError:
            return None
        return registry

    def decision_point(self, version: str | None = None) -> DecisionPoint:
        """The decision point for ``version``, or for the version in force now."""
        version = version or self.current_policy_version()
        points = self._point_cache
        with self._policy_lock:
            if version in points:
                points.move_to_end(version)
                return points[version]
        try:
            published: PolicyVersion = self.repository.get(
                PolicyVersion.create_id(content_hash=version)
            )
        except AggregateNotFoundError:
            raise UnknownPolicyVersion(f"no policy version {version} was published") from None
        point = DecisionPoint.from_text(published.policy_text, published.model_text)
        with self._policy_lock:
            points[version] = point
            while len(points) > _CACHED_POINTS:
                points.popitem(last=False)
        return point

    def current_policy_version(self) -> str:
        """The version in force; the shipped default policy is published on first need."""
        now = time.monotonic()
        current = self._current
        if current is not None and now - current[0] < POLICY_REFRESH_SECONDS:
            return current[1]
        registry = self.policy_registry()
        version = registry.current if registry is not None else None
        if version is None:
            return self.publish_policy(default_policy_text())
        self._current = (now, version)
        return version

    def _has(self, aggregate_id: UUID) -> bool:
        try:
            self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True
