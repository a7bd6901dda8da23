"""The decision point: Casbin's semantics for ``model.conf``, compiled into indexes.

pycasbin evaluates the matcher against every rule on every call. Here the
rules are indexed by (department, document type, purpose) and the role graph
is resolved per (member, department) once, so a decision costs a few dict
lookups at any policy size. ``tests/property/test_decision_point.py`` checks
on generated policies and requests that every decision equals a plain
``casbin.Enforcer``'s, down to the rule it matched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from policy.rules import (
    EVERY_OFFICER,
    TRACKS,
    AccessRule,
    AttestRule,
    PolicyRules,
    TrackRule,
    model_text,
    parse_policy,
    policy_version,
)
from policy.scales import UNRATED_GRADE_FOR_ACCESS, Grade, TrustLevel

# Casbin's default role manager follows at most 10 levels, the member itself included.
MAX_ROLE_DEPTH = 9


@dataclass(frozen=True)
class Reason:
    """Why a decision went the way it did: a stable code and words people can read.

    ``text`` is for the resident and auditors; an officer is told ``redacted`` where there
    is one: the requirement, never the resident's credit grade (which is personal)."""

    code: str
    text: str
    redacted: str | None = None

    @property
    def for_officer(self) -> str:
        return self.text if self.redacted is None else self.redacted


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...]
    rule: str | None
    """The first rule (in file order) that allowed the request, as written in the policy."""
    policy_version: str


@dataclass(frozen=True)
class TrackDecision:
    tracks: tuple[str, ...]
    reasons: tuple[Reason, ...]
    policy_version: str


class DecisionPoint:
    """Decides access and fast-track tracks for one policy version."""

    def __init__(self, rules: PolicyRules, version: str) -> None:
        self.version = version
        self._access: dict[tuple[str, str, str], list[AccessRule]] = defaultdict(list)
        for rule in rules.access:
            self._access[(rule.department, rule.doc_type, rule.purpose)].append(rule)
        self._tracks: dict[str, list[TrackRule]] = defaultdict(list)
        for track in rules.tracks:
            self._tracks[track.service].append(track)
        self._links: dict[tuple[str, str], list[str]] = defaultdict(list)
        for link in rules.links:
            self._links[(link.department, link.member)].append(link.role)
        self._attest: dict[tuple[str, str, str], list[AttestRule]] = defaultdict(list)
        for attest in rules.attestations:
            self._attest[(attest.department, attest.doc_type, attest.act)].append(attest)
        self._handled = {(rule.department, rule.purpose) for rule in rules.access}
        self._roles = lru_cache(maxsize=65536)(self._resolve_roles)

    @classmethod
    def from_text(cls, policy: str, model: str | None = None) -> DecisionPoint:
        """Compile a policy file (raises ``PolicyError`` naming the first bad line)."""
        model = model_text() if model is None else model
        return cls(parse_policy(policy), policy_version(model, policy))

    def decide(
        self,
        *,
        officer: str,
        department: str,
        doc_type: str,
        purpose: str,
        grade: Grade | None,
        trust: TrustLevel,
    ) -> Decision:
        """May this officer of this department fetch this document type for this purpose?"""
        effective = grade if grade is not None else UNRATED_GRADE_FOR_ACCESS
        candidates = self._access.get((department, doc_type, purpose))
        if not candidates:
            return self._deny(
                Reason(
                    "no-rule",
                    f"no rule lets {department} fetch {doc_type} for {purpose}",
                )
            )
        roles = self._roles(officer, department) | self._roles(EVERY_OFFICER, department)
        held = [rule for rule in candidates if rule.role in roles]
        if not held:
            return self._deny(
                Reason(
                    "no-role",
                    f"officer {officer} holds no role in {department} that may fetch "
                    f"{doc_type} for {purpose}",
                )
            )
        for rule in held:
            if effective.at_least(rule.min_grade) and trust.at_least(rule.min_trust):
                reason = Reason(
                    "allowed",
                    f"{department} may fetch {doc_type} for {purpose} "
                    f"(grade {effective.value}, trust level {trust.value})",
                    f"{department} may fetch {doc_type} for {purpose} "
                    f"(trust level {trust.value})",
                )
                return Decision(True, (reason,), rule.text(), self.version)
        return self._deny(*self._shortfall(held, effective, trust, grade is None, purpose))

    def attest(self, *, officer: str, department: str, doc_type: str, act: str) -> Decision:
        """May this officer of this department issue (``act="issue"``) or verify
        (``act="verify"``) a document of this type?"""
        candidates = self._attest.get((department, doc_type, act))
        if not candidates:
            return self._deny(
                Reason("no-rule", f"no rule lets {department} {act} {doc_type}")
            )
        roles = self._roles(officer, department) | self._roles(EVERY_OFFICER, department)
        rule = next((rule for rule in candidates if rule.role in roles), None)
        if rule is None:
            return self._deny(
                Reason(
                    "no-role",
                    f"officer {officer} holds no role in {department} that may {act} "
                    f"{doc_type}",
                )
            )
        reason = Reason("allowed", f"{department} may {act} {doc_type}")
        return Decision(True, (reason,), rule.text(), self.version)

    def handles(self, department: str, service: str) -> bool:
        """Whether the department handles the service: some rule lets it fetch documents
        for it (and so it may be told the fast-track tracks a resident earns for it)."""
        return (department, service) in self._handled

    def tracks(self, service: str, grade: Grade | None) -> TrackDecision:
        """The fast-track tracks a resident with ``grade`` earns for ``service``."""
        rules = self._tracks.get(service, [])
        if grade is None:
            reason = Reason(
                "unrated", "no credit grade yet: no fast-track applies", "no fast-track applies"
            )
            return TrackDecision((), (reason,), self.version)
        if not rules:
            reason = Reason("no-tracks", f"{service} has no fast-track tracks")
            return TrackDecision((), (reason,), self.version)
        earned: list[str] = []
        reasons: list[Reason] = []
        for track in TRACKS:
            minimums = [r.min_grade for r in rules if r.track == track]
            if not minimums:
                continue
            easiest = min(minimums, key=lambda g: g.rank)
            needs = f"{track}: needs grade {easiest.value} or better"
            if grade.at_least(easiest):
                earned.append(track)
                reasons.append(
                    Reason(track, f"{track}: grade {grade.value} qualifies", f"{needs}: met")
                )
            else:
                reasons.append(
                    Reason(
                        f"no-{track}", f"{needs}, the resident has {grade.value}",
                        f"{needs}: not met",
                    )
                )
        return TrackDecision(tuple(earned), tuple(reasons), self.version)

    def _deny(self, *reasons: Reason) -> Decision:
        return Decision(False, reasons, None, self.version)

    @staticmethod
    def _shortfall(
        held: Iterable[AccessRule], grade: Grade, trust: TrustLevel, unrated: bool, purpose: str
    ) -> list[Reason]:
        """The reasons the closest rule was not met (fewest failed conditions, file order)."""

        def failures(rule: AccessRule) -> list[Reason]:
            found = []
            if not grade.at_least(rule.min_grade):
                shown = f"{grade.value} (unrated counts as C)" if unrated else grade.value
                found.append(
                    Reason(
                        "grade-too-low",
                        f"credit grade {shown} is below the {rule.min_grade.value} "
                        f"{purpose} requires",
                        f"{purpose} requires credit grade {rule.min_grade.value} or better",
                    )
                )
            if not trust.at_least(rule.min_trust):
                found.append(
                    Reason(
                        "trust-too-low",
                        f"document trust level {trust.value} is below the "
                        f"{rule.min_trust.value} {purpose} requires",
                    )
                )
            return found

        return min((failures(rule) for rule in held), key=len)

    def _resolve_roles(self, member: str, department: str) -> frozenset[str]:
        """The member and every role it reaches in the department, as Casbin's role manager does."""
        seen = {member}
        frontier = [member]
        for _ in range(MAX_ROLE_DEPTH):
            frontier = [
                role
                for name in frontier
                for role in self._links.get((department, name), ())
                if role not in seen
            ]
            if not frontier:
                break
            seen.update(frontier)
        return frozenset(seen)
