"""The catalogue file: the shipped one is whole and consistent with the shipped policy; a
mistake in any is refused with its line and reason, and never with anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy.catalogue import (
    CITY_WIDE,
    Catalogue,
    CatalogueError,
    catalogue,
    parse_catalogue,
    shipped_catalogue_text,
)
from policy.rules import default_policy_text, parse_policy

SHIPPED = shipped_catalogue_text()


def _line_of(text: str, needle: str, after: str | None = None) -> int:
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i in range(start, len(lines)) if needle in lines[i]) + 1


def test_the_shipped_catalogue_has_four_levels_under_one_city() -> None:
    found = catalogue()
    levels = [u.level for u in found.units()]
    assert levels.count("city") == 1
    assert {"district", "street", "community"} <= set(levels)
    for unit in found.units():
        assert [u.level for u in reversed(found.ancestry(unit.id))] == [
            "city", "district", "street", "community"
        ][: len(found.ancestry(unit.id))]
    assert found.within("anle", "dongcheng")
    assert not found.within("anle", "xicheng")


def test_the_shipped_catalogue_holds_the_services_a_community_centre_handles() -> None:
    services = {s.id: s for s in catalogue().services()}
    assert {
        "subsistence-allowance", "housing-subsidy", "residence-permit", "employment-subsidy",
        "elderly-card", "birth-registration", "disability-subsidy", "temporary-assistance",
    } <= set(services)
    assert services["elderly-card"].name_zh == "老年人优待证办理"
    assert any(len(s.steps) > 1 for s in services.values())  # 后台协同: more than one step
    assert any(not m.key for s in services.values() for m in s.materials)  # 容缺 possible
    assert any(m.commitment_allowed for s in services.values() for m in s.materials)


def test_each_reviewing_department_may_fetch_every_material_of_its_service() -> None:
    """A reviewer reads the materials under the application's consent, through the policy:
    the shipped policy must let each step's departments fetch each material at the trust
    level the catalogue accepts it at."""
    rules = parse_policy(default_policy_text())
    for service in catalogue().services():
        for step in service.steps:
            for department in step.departments:
                for material in service.materials:
                    allowing = [
                        r for r in rules.access
                        if (r.department, r.doc_type, r.purpose)
                        == (department, material.doc_type, service.id)
                    ]
                    assert allowing, (service.id, department, material.doc_type)
                    assert material.min_trust.at_least(allowing[0].min_trust), (
                        service.id, department, material.doc_type
                    )
        issuers = {r.department for r in rules.attestations
                   if r.doc_type == service.issues and r.act == "issue"}
        assert service.department in issuers, service.id


def test_where_a_service_may_be_accepted() -> None:
    found = catalogue()
    assert found.service("residence-permit").accepted_at == (CITY_WIDE,)
    assert found.accepts("residence-permit", "binjiang")
    assert found.accepts("subsistence-allowance", "anle")  # a community
    assert found.accepts("subsistence-allowance", "heping-street")
    assert not found.accepts("subsistence-allowance", "dongcheng")  # a district


def test_the_version_is_the_hash_of_the_file() -> None:
    first, second = parse_catalogue(SHIPPED), parse_catalogue(SHIPPED + "\n# a comment\n")
    assert len(first.version) == 64
    assert first.version != second.version
    assert first.entries == second.entries


MISTAKES = [
    ('department = "civil-affairs"', 'department = "civil-affair"', None,
     "no department"),
    ('{ doc_type = "income-proof", min_trust = "C", key = false, commitment_allowed = true }',
     '{ doc_type = "income-proofs", min_trust = "C", key = false }', None, "no doc_type"),
    ('source = "id-card.name"', 'source = "id-card.nickname"', None, "no attribute"),
    ('source = "income-proof.monthly_income"', 'source = "diploma.school"', None,
     "no material of the service"),
    ('min_trust = "C", key = true', 'min_trust = "E", key = true', None, "A, B, C or D"),
    ("time_limit_days = 20", "time_limit_days = 40", None, "time limits"),
    ('parent = "dongcheng"', 'parent = "binjiang"', 'id = "heping-street"',
     "parent must be a district"),
    ('id = "xicheng"', 'id = "dongcheng"', 'Dongcheng District', "listed twice"),
    ('name_zh = "民政局"', 'name_zh = "民政\u202e局"', None, "printable"),
    ('accepted_at = ["city-wide"]', 'accepted_at = ["city-wide", "street"]', None,
     "stands alone"),
    ('category = "elderly"', 'category = "old-age"', None, "no category"),
    ('id = "anle"', 'id = "An Le"', None, "lower-case"),
    ("time_limit_days = 3", 'time_limit_days = "3"', None, "must be int"),
    ('level = "community"', 'level = "village"', None, "level must be one of"),
    ('name_en = "Tax Bureau"', 'name_en = "Tax Bureau"\nmotto = "x"', None, "unknown key"),
]


@pytest.mark.parametrize(("old", "new", "after", "reason"), MISTAKES)
def test_a_mistake_is_refused_with_its_line_and_reason(
    old: str, new: str, after: str | None, reason: str
) -> None:
    start = SHIPPED.index(after) if after else 0
    at = SHIPPED.index(old, start)
    text = SHIPPED[:at] + new + SHIPPED[at + len(old):]
    with pytest.raises(CatalogueError) as refused:
        parse_catalogue(text)
    assert reason in refused.value.reason
    expected = _line_of(text, new.splitlines()[-1], after)
    assert refused.value.line == expected, (refused.value, expected)


def test_a_file_that_is_not_toml_is_refused_with_its_line() -> None:
    text = SHIPPED.replace('name_en = "Tax Bureau"', 'name_en = "Tax Bureau', 1)
    with pytest.raises(CatalogueError) as refused:
        parse_catalogue(text)
    assert refused.value.line == _line_of(text, 'name_en = "Tax Bureau')
    assert "not TOML" in refused.value.reason


def test_a_catalogue_needs_one_city() -> None:
    with pytest.raises(CatalogueError, match="one city"):
        parse_catalogue('[[department]]\nid = "tax"\nname_zh = "税务局"\nname_en = "Tax"\n')


@given(st.data())
def test_any_line_removed_either_reads_or_is_refused_with_a_line_of_the_file(
    data: st.DataObject,
) -> None:
    lines = SHIPPED.splitlines()
    removed = data.draw(st.integers(0, len(lines) - 1))
    text = "\n".join(lines[:removed] + lines[removed + 1:])
    refused: CatalogueError | None = None
    try:
        found: Catalogue | None = parse_catalogue(text)
    except CatalogueError as e:
        found, refused = None, e
    assert (found is None) != (refused is None)
    if refused is not None:
        assert 1 <= refused.line <= len(lines)
