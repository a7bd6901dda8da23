"""A plain ``casbin.Enforcer`` for ``model.conf``: the reference the decision point must equal.

Used by the differential tests and the policy benchmark; it is exact but scans
every rule on every call.
"""

from __future__ import annotations

from typing import Any

import casbin
from casbin.model.model_fast import FastModel
from casbin.persist.adapters.string_adapter import StringAdapter

from policy.rules import ACCESS, ATTEST, ROLE, TRACK, PolicyRules, model_text
from policy.scales import Grade, TrustLevel

_FAST_KEYS = [1, 2, 3]  # department, document type, purpose in the p rule


def grade_at_least(grade: str, minimum: str) -> bool:
    return Grade(grade).at_least(Grade(minimum))


def trust_at_least(trust: str, minimum: str) -> bool:
    return TrustLevel(trust).at_least(TrustLevel(minimum))


def casbin_policy_lines(rules: PolicyRules) -> str:
    """The rules as Casbin CSV, one per line, in file order within each kind."""
    lines = [f"{ROLE}, {r.member}, {r.role}, {r.department}" for r in rules.links]
    lines += [r.text() for r in rules.access]
    lines += [f"{TRACK}, {r.service}, {r.min_grade.value}, {r.track}" for r in rules.tracks]
    lines += [r.text() for r in rules.attestations]
    assert all(line.startswith((ACCESS, ROLE, TRACK, ATTEST)) for line in lines)
    return "\n".join(lines)


def casbin_enforcer(rules: PolicyRules, *, fast: bool = False) -> Any:
    """A Casbin enforcer loaded with ``rules``; ``fast`` gives a ``FastEnforcer`` keyed on the
    exact-match fields (department, document type, purpose)."""
    adapter = StringAdapter(casbin_policy_lines(rules))
    if fast:
        model: Any = FastModel(_FAST_KEYS)
        model.load_model_from_text(model_text())
        enforcer: Any = casbin.FastEnforcer(model, adapter, cache_key_order=_FAST_KEYS)
    else:
        enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=model_text()), adapter)
    enforcer.add_function("gradeAtLeast", grade_at_least)
    enforcer.add_function("trustAtLeast", trust_at_least)
    return enforcer


def track_context(enforcer: Any) -> Any:
    """The enforce context for the fast-track section (r2, p2, e2, m2)."""
    return enforcer.new_enforce_context("2")


def attest_context(enforcer: Any) -> Any:
    """The enforce context for the attestation section (r3, p3, e3, m3)."""
    return enforcer.new_enforce_context("3")
