"""Policy files: every line checked, the first bad one named."""

from __future__ import annotations

import pytest

from policy.catalogue import catalogue, display_name
from policy.decision import DecisionPoint
from policy.rules import (
    TRACKS,
    PolicyError,
    default_policy_text,
    model_text,
    parse_policy,
    policy_version,
)
from policy.scales import Grade, TrustLevel


def test_the_default_policy_holds_the_reference_rules() -> None:
    rules = parse_policy(default_policy_text())
    table = {
        (r.department, r.doc_type, r.purpose): (r.min_grade, r.min_trust) for r in rules.access
    }
    civil = ("civil-affairs", "income-proof", "subsistence-allowance")
    assert table[civil] == (Grade.C, TrustLevel.C)
    assert table[("housing", "property-cert", "housing-subsidy")] == (Grade.B, TrustLevel.B)
    assert table[("public-security", "birth-cert", "residence-permit")] == (Grade.D, TrustLevel.C)
    assert table[("human-resources", "diploma", "employment-subsidy")] == (Grade.C, TrustLevel.C)
    assert len(table) == 27


def test_version_is_the_hash_of_model_and_rules() -> None:
    point = DecisionPoint.from_text(default_policy_text())
    assert point.version == policy_version(model_text(), default_policy_text())
    assert point.version != policy_version(model_text(), default_policy_text() + "\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q, a, b\n", "line 1: unknown rule type 'q'"),
        ("p, caseworker, housing\n", "line 1: a p rule has 6 fields"),
        ("\n# c\np, Case, housing, id-card, x, B, B\n", "line 3: role 'Case'"),
        ("p, caseworker, housing, id-card, x, B, Z\n", "line 1: min_trust 'Z'"),
        ("p2, x, A, fly\n", "line 1: track 'fly' is not one of"),
        ("g, li ming, caseworker, housing\n", "line 1: member 'li ming'"),
        ("g, li, officer, housing\n", "line 1: 'officer' is every officer"),
        ("p2, x, A, reuse\n", "the policy has no access (p) rules"),
    ],
)
def test_bad_lines_are_named(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_policy(text)


def test_everything_the_default_policy_names_has_a_display_name() -> None:
    rules = parse_policy(default_policy_text())
    named = {("department", r.department) for r in rules.access}
    named |= {("doc_type", r.doc_type) for r in rules.access}
    named |= {("service", r.purpose) for r in rules.access}
    named |= {("service", t.service) for t in rules.tracks}
    named |= {("track", t) for t in TRACKS}
    named |= {("department", r.department) for r in rules.attestations}
    named |= {("doc_type", r.doc_type) for r in rules.attestations}
    assert named <= set(catalogue().entries)
    assert display_name("department", "civil-affairs") == "民政局 (civil-affairs)"
    assert display_name("doc_type", "unknown-thing") == "unknown-thing"


def test_each_service_of_the_catalogue_is_owned_by_a_department_that_handles_it() -> None:
    """The catalogue's owner of a service is a department the shipped policy lets fetch
    for it, and what the service needs are document types its rules name."""
    rules = parse_policy(default_policy_text())
    for service in catalogue().services():
        fetchable = {r.doc_type for r in rules.access if r.purpose == service.id}
        owners = {r.department for r in rules.access if r.purpose == service.id}
        assert service.department in owners, service
        assert set(service.needs) <= fetchable, service
