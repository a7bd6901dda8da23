"""Policy versions: published as events, put in force, and the decision point of any of
them; the fast-track tracks a resident's grade earns for a service."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from policy.decision import DecisionPoint, Reason, TrackDecision
from policy.rules import PolicyError, default_policy_text, model_text
from vault.consent import Consent, ConsentStatus
from vault.errors import InvalidPolicy, NoConsent, ServiceNotHandled, UnknownPolicyVersion
from vault.ids import check_resident_id, resident_aggregate_id
from vault.inputs import check_known
from vault.policies import REGISTRY_ID, PolicyRegistry, PolicyVersion
from vault.ports import Clock
from vault.resident import Resident
from vault.services.residents import Residents
from vault.store import Store, Written

POLICY_REFRESH_SECONDS = 1.0
"""How soon a policy published by another process takes effect here."""
_CACHED_POINTS = 8


class Policies:
    def __init__(self, store: Store, residents: Residents, clock: Clock) -> None:
        self._store = store
        self._residents = residents
        self._clock = clock
        self._lock = threading.Lock()
        self._points: OrderedDict[str, DecisionPoint] = OrderedDict()
        self._current: tuple[float, str] | None = None

    def publish(self, policy_text: str) -> Written[str]:
        """Check, record and put in force a policy file; returns its version (content hash).

        A bad file is refused with its first bad line and changes nothing.
        """
        try:
            point = DecisionPoint.from_text(policy_text, model_text())
        except PolicyError as e:
            raise InvalidPolicy(e.line, e.reason) from None

        def publish() -> int | None:
            version_id = PolicyVersion.create_id(content_hash=point.version)
            published = self._store.find(version_id) is not None
            registry = self._registry()
            now = self._clock.now()  # after loading: later than anything loaded
            changed: list[PolicyVersion | PolicyRegistry] = []
            if not published:
                changed.append(
                    PolicyVersion(
                        content_hash=point.version,
                        model_text=model_text(),
                        policy_text=policy_text,
                        published_at=now,
                        timestamp=now,
                    )
                )
            registry = registry or PolicyRegistry(timestamp=now)
            registry.activate(point.version, now)
            changed.append(registry)
            return self._store.save(*changed)

        position = self._store.retrying(publish)
        with self._lock:
            self._points[point.version] = point
            self._current = (time.monotonic(), point.version)
        return Written(point.version, position)

    def current_version(self) -> str:
        """The version in force; the shipped default policy is published on first need."""
        now = time.monotonic()
        current = self._current
        if current is not None and now - current[0] < POLICY_REFRESH_SECONDS:
            return current[1]
        registry = self._registry()
        version = registry.current if registry is not None else None
        if version is None:
            return self.publish(default_policy_text()).value
        self._current = (now, version)
        return version

    def decision_point(self, version: str | None = None) -> DecisionPoint:
        """The decision point for ``version``, or for the version in force now."""
        version = version or self.current_version()
        points = self._points
        with self._lock:
            if version in points:
                points.move_to_end(version)
                return points[version]
        published = self._store.find(PolicyVersion.create_id(content_hash=version))
        if not isinstance(published, PolicyVersion):
            raise UnknownPolicyVersion(f"no policy version {version} was published")
        point = DecisionPoint.from_text(published.policy_text, published.model_text)
        with self._lock:
            points[version] = point
            while len(points) > _CACHED_POINTS:
                points.popitem(last=False)
        return point

    def tracks_for(self, resident_id: str, service: str, *, department: str) -> TrackDecision:
        """The fast-track tracks that apply to the resident for a service, with reasons, as
        a department is told them: only a department that handles the service
        (:class:`ServiceNotHandled` otherwise) and holds the resident's live consent for it
        (:class:`NoConsent` otherwise, as for a resident it cannot tell is registered);
        the reasons name the requirements, never the resident's credit grade."""
        check_known("service_id", "service", service)
        check_known("department", "department", department)
        check_resident_id(resident_id)
        point = self.decision_point()
        if not point.handles(department, service):
            raise ServiceNotHandled(f"{department} handles no service {service}")
        resident = self._store.find(resident_aggregate_id(resident_id))
        now = self._clock.now()
        if not isinstance(resident, Resident) or resident.is_erased or not any(
            isinstance(consent, Consent) and consent.status(now) is ConsentStatus.ACTIVE
            for consent in map(self._store.find, resident.consents_for(department, service))
        ):
            raise NoConsent(
                f"no live consent from the resident lets {department} act for {service}"
            )
        decided = point.tracks(service, resident.grade)
        told = tuple(Reason(r.code, r.for_officer) for r in decided.reasons)
        return TrackDecision(decided.tracks, told, decided.policy_version)

    def _registry(self) -> PolicyRegistry | None:
        registry = self._store.find(REGISTRY_ID)
        return registry if isinstance(registry, PolicyRegistry) else None
