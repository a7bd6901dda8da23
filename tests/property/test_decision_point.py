"""Differential tests: the compiled decision point decides exactly as a plain casbin.Enforcer.

Each run compares well over 10,000 generated requests for the default policy,
for many small generated policies (role hierarchies, cycles, chains deeper than
Casbin follows), and for a generated policy of 100,000 rules. Any disagreement
— allow/deny, the rule matched, the fast-track tracks, or who may issue and
verify which document types — fails the build.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.casbin_oracle import attest_context, casbin_enforcer, track_context
from policy.decision import DecisionPoint
from policy.rules import (
    ACTS,
    TRACKS,
    AccessRule,
    AttestRule,
    PolicyRules,
    RoleLink,
    TrackRule,
    default_policy_text,
    parse_policy,
)
from policy.scales import UNRATED_GRADE_FOR_ACCESS, Grade, TrustLevel

REQUESTS_PER_EXAMPLE = 120
grades = st.one_of(st.none(), st.sampled_from(list(Grade)))
trusts = st.sampled_from(list(TrustLevel))


def _casbin_decision(enforcer: Any, request: tuple[Any, ...]) -> tuple[bool, str | None]:
    officer, department, doc_type, purpose, grade, trust = request
    effective = grade or UNRATED_GRADE_FOR_ACCESS
    allowed, explain = enforcer.enforce_ex(
        officer, department, doc_type, purpose, effective.value, trust.value
    )
    return allowed, ("p, " + ", ".join(explain)) if allowed else None


def _ours(point: DecisionPoint, request: tuple[Any, ...]) -> tuple[bool, str | None]:
    officer, department, doc_type, purpose, grade, trust = request
    decision = point.decide(
        officer=officer,
        department=department,
        doc_type=doc_type,
        purpose=purpose,
        grade=grade,
        trust=trust,
    )
    return decision.allowed, decision.rule


def _assert_same(point: DecisionPoint, enforcer: Any, requests: list[tuple[Any, ...]]) -> None:
    for request in requests:
        assert _ours(point, request) == _casbin_decision(enforcer, request), request


def _assert_same_attestations(
    point: DecisionPoint, enforcer: Any, requests: list[tuple[str, str, str, str]]
) -> None:
    """Who may issue or verify: allowed or not, and the rule matched."""
    context = attest_context(enforcer)
    for officer, department, doc_type, act in requests:
        allowed, explain = enforcer.enforce_ex(context, officer, department, doc_type, act)
        theirs = (allowed, ("p3, " + ", ".join(explain)) if allowed else None)
        decision = point.attest(officer=officer, department=department, doc_type=doc_type, act=act)
        assert (decision.allowed, decision.rule) == theirs, (officer, department, doc_type, act)


# The default policy


DEFAULT = parse_policy(default_policy_text())
DEFAULT_POINT = DecisionPoint.from_text(default_policy_text())
DEFAULT_ENFORCER = casbin_enforcer(DEFAULT)


def _names(values: set[str], *extra: str) -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(values | set(extra)))


default_requests = st.tuples(
    _names({link.member for link in DEFAULT.links}, "li-ming", "wang-fang"),
    _names({r.department for r in DEFAULT.access}, "tax-bureau"),
    _names({r.doc_type for r in DEFAULT.access}, "passport"),
    _names({r.purpose for r in DEFAULT.access}, "pension"),
    grades,
    trusts,
)


@pytest.mark.slow
@settings(max_examples=100)
@given(st.lists(default_requests, min_size=REQUESTS_PER_EXAMPLE, max_size=REQUESTS_PER_EXAMPLE))
def test_default_policy_decides_like_casbin(requests: list[tuple[Any, ...]]) -> None:
    _assert_same(DEFAULT_POINT, DEFAULT_ENFORCER, requests)


@settings(max_examples=30)
@given(
    service=_names({t.service for t in DEFAULT.tracks}, "pension"),
    grade=st.sampled_from(list(Grade)),
)
def test_default_tracks_like_casbin(service: str, grade: Grade) -> None:
    assert DEFAULT_POINT.tracks(service, grade).tracks == _casbin_tracks(
        DEFAULT_ENFORCER, service, grade
    )


default_attestations = st.tuples(
    _names({link.member for link in DEFAULT.links}, "li-ming"),
    _names({r.department for r in DEFAULT.attestations}, "pension-fund"),
    _names({r.doc_type for r in DEFAULT.attestations}, "passport"),
    st.sampled_from([*ACTS, "revoke"]),
)


@settings(max_examples=50)
@given(st.lists(default_attestations, min_size=40, max_size=40))
def test_default_attestations_decide_like_casbin(requests: list[tuple[str, str, str, str]]) -> None:
    _assert_same_attestations(DEFAULT_POINT, DEFAULT_ENFORCER, requests)


def _casbin_tracks(enforcer: Any, service: str, grade: Grade) -> tuple[str, ...]:
    context = track_context(enforcer)
    return tuple(t for t in TRACKS if enforcer.enforce(context, service, grade.value, t))


# Small generated policies: role graphs with hierarchies, cycles and deep chains

MEMBERS = ["o1", "o2", "o3", "officer", "r1", "r2", "r3", "r4"]
ROLES = ["r1", "r2", "r3", "r4"]
DEPARTMENTS = ["d1", "d2"]
DOC_TYPES = ["t1", "t2"]
PURPOSES = ["u1", "u2"]


@st.composite
def small_policies(draw: st.DrawFn) -> PolicyRules:
    links = draw(
        st.lists(
            st.builds(
                RoleLink,
                st.just(0),
                st.sampled_from(MEMBERS),
                st.sampled_from(ROLES),
                st.sampled_from(DEPARTMENTS),
            ),
            max_size=12,
        )
    )
    chain_length = draw(st.integers(0, 12))
    chain = [f"c{i}" for i in range(chain_length + 1)]
    links += [RoleLink(0, a, b, "d1") for a, b in itertools.pairwise(chain)]
    access = draw(
        st.lists(
            st.builds(
                AccessRule,
                st.just(0),
                st.sampled_from([*ROLES, "o1", "officer", *chain[-3:]]),
                st.sampled_from(DEPARTMENTS),
                st.sampled_from(DOC_TYPES),
                st.sampled_from(PURPOSES),
                st.sampled_from(list(Grade)),
                st.sampled_from(list(TrustLevel)),
            ),
            min_size=1,
            max_size=12,
        )
    )
    tracks = draw(
        st.lists(
            st.builds(TrackRule, st.just(0), st.sampled_from(PURPOSES),
                      st.sampled_from(list(Grade)), st.sampled_from(TRACKS)),
            max_size=6,
        )
    )
    attestations = draw(
        st.lists(
            st.builds(
                AttestRule,
                st.just(0),
                st.sampled_from([*ROLES, "o1", "officer", *chain[-3:]]),
                st.sampled_from(DEPARTMENTS),
                st.sampled_from(DOC_TYPES),
                st.sampled_from(ACTS),
            ),
            max_size=8,
        )
    )
    return PolicyRules(tuple(access), tuple(tracks), tuple(links), tuple(attestations))


small_attestations = st.tuples(
    st.sampled_from(["o1", "o2", "o3", "o4", "c0", "r1"]),
    st.sampled_from([*DEPARTMENTS, "d3"]),
    st.sampled_from(DOC_TYPES),
    st.sampled_from(ACTS),
)


small_requests = st.tuples(
    st.sampled_from(["o1", "o2", "o3", "o4", "c0", "r1"]),
    st.sampled_from([*DEPARTMENTS, "d3"]),
    st.sampled_from(DOC_TYPES),
    st.sampled_from(PURPOSES),
    grades,
    trusts,
)


@settings(max_examples=150)
@given(policy=small_policies(), requests=st.lists(small_requests, min_size=40, max_size=40))
def test_generated_policies_decide_like_casbin(
    policy: PolicyRules, requests: list[tuple[Any, ...]]
) -> None:
    point = DecisionPoint(policy, "generated")
    enforcer = casbin_enforcer(policy)
    _assert_same(point, enforcer, requests)
    _assert_same_attestations(
        point, enforcer, [(o, d, t, a) for o, d, t, _, _, _ in requests for a in ACTS]
    )
    for purpose in PURPOSES:
        for grade in Grade:
            assert point.tracks(purpose, grade).tracks == _casbin_tracks(enforcer, purpose, grade)


# A generated policy of 100,000 rules


def _large_policy(size: int = 100_000, seed: int = 2026) -> PolicyRules:
    rng = random.Random(seed)
    departments = [f"dept-{i}" for i in range(1000)]
    links = [RoleLink(0, "officer", "clerk", d) for d in departments]
    links += [RoleLink(0, "clerk", "caseworker", d) for d in departments[::2]]
    links += [RoleLink(0, f"officer-{i}", "senior", rng.choice(departments)) for i in range(2000)]
    access = [
        AccessRule(
            0,
            rng.choice(["clerk", "caseworker", "senior"]),
            rng.choice(departments),
            f"doc-{rng.randrange(60)}",
            f"purpose-{rng.randrange(40)}",
            rng.choice(list(Grade)),
            rng.choice(list(TrustLevel)),
        )
        for _ in range(size)
    ]
    return PolicyRules(tuple(access), (), tuple(links))


@pytest.fixture(scope="module")
def large() -> tuple[PolicyRules, DecisionPoint, dict[str, Any]]:
    policy = _large_policy()
    # One plain Enforcer per department holds that department's rules and role links. The
    # matcher requires r.dom == p.dom and g() looks only at links of r.dom, so rules of other
    # departments can never match; test_partitioning_is_exact checks that on the full policy.
    by_department: dict[str, tuple[list[AccessRule], list[RoleLink]]] = defaultdict(
        lambda: ([], [])
    )
    for rule in policy.access:
        by_department[rule.department][0].append(rule)
    for link in policy.links:
        by_department[link.department][1].append(link)
    enforcers = {
        department: casbin_enforcer(PolicyRules(tuple(access), (), tuple(links)))
        for department, (access, links) in by_department.items()
    }
    return policy, DecisionPoint(policy, "large"), enforcers


@st.composite
def large_requests(draw: st.DrawFn, policy: PolicyRules) -> tuple[Any, ...]:
    """Requests near real rules (so both allow and deny are common), sometimes perturbed."""
    rule = policy.access[draw(st.integers(0, len(policy.access) - 1))]
    officer = draw(st.sampled_from(["someone", f"officer-{draw(st.integers(0, 1999))}"]))
    doc_type = draw(st.sampled_from([rule.doc_type, "doc-999"]))
    return (officer, rule.department, doc_type, rule.purpose, draw(grades), draw(trusts))


@pytest.mark.slow
def test_partitioning_is_exact(large: tuple[PolicyRules, DecisionPoint, dict[str, Any]]) -> None:
    """The full 100,000-rule plain Enforcer agrees with the per-department ones (and with us)."""
    policy, point, enforcers = large
    full = casbin_enforcer(policy)
    rng = random.Random(7)
    for _ in range(12):
        rule = rng.choice(policy.access)
        request = (
            rng.choice(["someone", f"officer-{rng.randrange(2000)}"]),
            rule.department,
            rule.doc_type,
            rule.purpose,
            rng.choice([None, *Grade]),
            rng.choice(list(TrustLevel)),
        )
        expected = _casbin_decision(full, request)
        assert _casbin_decision(enforcers[rule.department], request) == expected
        assert _ours(point, request) == expected


@pytest.mark.slow
@settings(max_examples=50)  # each example is REQUESTS_PER_EXAMPLE requests
@given(data=st.data())
def test_large_policy_decides_like_casbin(
    large: tuple[PolicyRules, DecisionPoint, dict[str, Any]], data: st.DataObject
) -> None:
    policy, point, enforcers = large
    size = REQUESTS_PER_EXAMPLE
    requests = data.draw(st.lists(large_requests(policy), min_size=size, max_size=size))
    for request in requests:
        assert _ours(point, request) == _casbin_decision(enforcers[request[1]], request), request


@pytest.mark.parametrize("length", range(13))
def test_role_chains_are_followed_exactly_as_deep_as_casbin_follows(length: int) -> None:
    chain = [f"c{i}" for i in range(length + 1)]
    links = tuple(RoleLink(0, a, b, "d1") for a, b in itertools.pairwise(chain))
    access = tuple(
        AccessRule(0, role, "d1", "t1", "u1", Grade.D, TrustLevel.D) for role in chain[1:]
    ) or (AccessRule(0, "r1", "d1", "t1", "u1", Grade.D, TrustLevel.D),)
    for rule in access:
        policy = PolicyRules((rule,), (), links)
        request = ("c0", "d1", "t1", "u1", Grade.A, TrustLevel.A)
        assert _ours(DecisionPoint(policy, "chain"), request) == _casbin_decision(
            casbin_enforcer(policy), request
        ), rule.role


# Monotonicity: a better grade or a more trusted document never turns an allow into a deny.


@settings(max_examples=150)
@given(policy=small_policies(), requests=st.lists(small_requests, min_size=20, max_size=20))
def test_raising_grade_or_trust_never_turns_allow_into_deny(
    policy: PolicyRules, requests: list[tuple[Any, ...]]
) -> None:
    point = DecisionPoint(policy, "generated")
    for officer, department, doc_type, purpose, _, _ in requests:
        for grade in [None, *Grade]:
            for trust in TrustLevel:
                if not _ours(point, (officer, department, doc_type, purpose, grade, trust))[0]:
                    continue
                effective = grade or UNRATED_GRADE_FOR_ACCESS
                for better_grade in (g for g in Grade if g.at_least(effective)):
                    for better_trust in (t for t in TrustLevel if t.at_least(trust)):
                        request = (officer, department, doc_type, purpose, better_grade,
                                   better_trust)
                        assert _ours(point, request)[0], request
