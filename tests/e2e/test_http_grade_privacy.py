"""A resident's credit grade is personal: what an officer is told depends on it only through
the decision it led to, never by naming it (invariant 4, and issue 15's finding that
fast-track answers and denial explanations said "the resident has D").

Two residents alike in everything but their grades are fetched, listed, verified, issued to
and asked about by officers, and found in the department's list of consents it holds;
wherever the two decisions come out the same, the two responses (bodies, headers,
problems) must be the same too, but for the ids in them; and no response names a grade.
Where their consents are over (revoked or expired), every response must be the same: a
department without a live consent must not watch the grade change through its denials.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.samples import sample_pdf
from policy.scales import Grade
from tests.e2e.conftest import LiveApi
from tests.support import MovableClock

CARD = sample_pdf("an ID card")
VOLATILE_HEADERS = {
    "date", "x-request-id", "x-access-id", "x-log-position", "content-length",
    "ratelimit-remaining", "ratelimit-reset",
}
VOLATILE_FIELDS = {"access_id", "request_id", "instance", "policy_version", "created_at"}
CONSENT_TIMES = {"valid_from", "expires_at", "granted_at"}
_count = itertools.count()


CONSENTS = ("live", "revoked", "expired")


@pytest.fixture
def clocked(
    stack: dict[str, Any], live_api_factory: Any
) -> tuple[LiveApi, MovableClock]:
    """A server on each stack, on a clock the test moves (to let consents expire)."""
    clock = MovableClock()
    return live_api_factory(clock=clock, **stack), clock


def _resident(
    api: LiveApi, name: str, grade: Grade | None, verified: bool, consents: str
) -> dict[str, str]:
    me = api.client("resident", name)
    document = me.post(
        "/v1/me/documents",
        data={"doc_type": "id-card", "title": "居民身份证"},
        files={"file": ("id.pdf", CARD, "application/pdf")},
    ).json()["document_id"]
    if verified:
        api.client("officer", "officer-zhou", "housing").post(
            f"/v1/residents/{name}/documents/{document}/verify"
        )
    until = (api.services.clock.now() + timedelta(days=1)).isoformat()
    granted_ids: dict[str, str] = {}
    for department, purpose in (
        ("housing", "housing-subsidy"),
        ("civil-affairs", "subsistence-allowance"),
        ("public-security", "residence-permit"),
    ):
        granted = me.post(
            "/v1/me/consents",
            json={"department": department, "doc_types": ["id-card"], "purpose": purpose,
                  "expires_at": until},
        )
        assert granted.status_code == 201, granted.text
        granted_ids[f"consent-{department}"] = granted.json()["consent_id"]
        if consents == "revoked":
            me.post(f"/v1/me/consents/{granted.json()['consent_id']}/revoke")
    if grade is not None:
        api.client("credit-platform", "credit-platform").post(
            "/v1/credit/grades",
            json={"updates": [{"resident_id": name, "grade": grade.value, "sequence": 1,
                               "effective_at": api.services.clock.now().isoformat()}]},
        )
    return {"resident": name, "document": document, **granted_ids}


def _asks(api: LiveApi, who: dict[str, str]) -> dict[str, httpx.Response]:
    """What officers ask of one resident, by what they ask."""
    resident, document = who["resident"], who["document"]
    housing = api.client("officer", "officer-zhou", "housing")
    civil = api.client("officer", "officer-li", "civil-affairs")
    security = api.client("officer", "officer-zhao", "public-security")
    education = api.client("officer", "officer-wu", "education")
    content = f"/v1/residents/{resident}/documents/{document}/content"
    return {
        # education issues diplomas, not id-cards (refused); public-security verifies id-cards
        "education issue": education.post(
            f"/v1/residents/{resident}/documents",
            data={"doc_type": "id-card", "title": "居民身份证"},
            files={"file": ("id.pdf", CARD, "application/pdf")},
        ),
        "education verify": education.post(
            f"/v1/residents/{resident}/documents/{document}/verify"
        ),
        "security verify": security.post(
            f"/v1/residents/{resident}/documents/{document}/verify"
        ),
        "housing fetch": housing.get(content, params={"purpose": "housing-subsidy"}),
        "civil fetch": civil.get(content, params={"purpose": "subsistence-allowance"}),
        "housing listing": housing.get(
            f"/v1/residents/{resident}/documents", params={"purpose": "housing-subsidy"}
        ),
        "security tracks": security.get(
            "/v1/services/residence-permit/tracks", params={"resident_id": resident}
        ),
        "civil tracks": civil.get(
            "/v1/services/subsistence-allowance/tracks", params={"resident_id": resident}
        ),
    }


def _consents_held(api: LiveApi, who: dict[str, str]) -> tuple[list[Any], str]:
    """The entries of civil-affairs' list of consents held that are this resident's, ids made
    alike, and the whole text the officer read with its headers."""
    civil = api.client("officer", "officer-li", "civil-affairs")
    entries: list[Any] = []
    text = ""
    cursor = None
    while True:
        response = civil.get("/v1/department/consents", params={"limit": 200, "cursor": cursor}
                             if cursor else {"limit": 200})
        assert response.status_code == 200, response.text
        text += response.text + str(response.headers)
        page = response.json()
        entries += [
            {k: v for k, v in entry.items() if k not in {"consent_id", *CONSENT_TIMES}}
            | {"resident_id": "R"}
            for entry in page["items"] if entry["resident_id"] == who["resident"]
        ]
        cursor = page["next_cursor"]
        if cursor is None:
            return entries, text


def _names_a_grade(told: str, grade: Grade) -> bool:
    return re.search(rf"(grade|has) {grade.value}\b(?! or better)", told) is not None


def _decision(response: httpx.Response) -> Any:
    """What the officer legitimately learns: the outcome, as codes and lists."""
    if response.headers.get("content-type", "").startswith("application/pdf"):
        return response.status_code
    body = response.json()
    return (
        response.status_code,
        body.get("reasons") if isinstance(body.get("reasons"), list) else None,
        body.get("tracks"),
        len(body.get("items", [])),
    )


def _seen(response: httpx.Response, who: dict[str, str]) -> Any:
    """The whole response, ids made alike."""
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    if not response.headers.get("content-type", "").startswith(("application/json",
                                                                "application/problem+json")):
        return response.status_code, headers, response.content
    text = response.text
    for name, value in who.items():
        text = text.replace(value, name)
    body = json.loads(text)

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k not in VOLATILE_FIELDS}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return response.status_code, headers, scrub(body)


grades = st.sampled_from([None, *Grade])


@settings(
    max_examples=12,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=grades, second=grades, verified=st.booleans(), consents=st.sampled_from(CONSENTS)
)
def test_what_an_officer_is_told_never_depends_on_the_grade_but_through_the_decision(
    clocked: tuple[LiveApi, MovableClock], first: Grade | None, second: Grade | None,
    verified: bool, consents: str,
) -> None:
    api, clock = clocked
    n = next(_count)
    a = _resident(api, f"ra-{n:04d}", first, verified, consents)
    b = _resident(api, f"rb-{n:04d}", second, verified, consents)
    if consents == "expired":
        clock.advance(timedelta(days=2))
    asked_a, asked_b = _asks(api, a), _asks(api, b)
    for what in asked_a:
        one, other = asked_a[what], asked_b[what]
        if consents != "live" or _decision(one) == _decision(other):
            assert _seen(one, a) == _seen(other, b), (what, consents, first, second)
        told = one.text + other.text + str(one.headers) + str(other.headers)
        for grade in {first, second} - {None}:
            assert grade is not None
            assert not _names_a_grade(told, grade), (what, told)
    (held_a, text_a), (held_b, _) = _consents_held(api, a), _consents_held(api, b)
    assert len(held_a) == len(held_b) == (consents == "live"), (held_a, held_b)
    if _decision(asked_a["civil fetch"]) != _decision(asked_b["civil fetch"]):
        for entry in (*held_a, *held_b):  # one fetch was allowed and used the consent once
            del entry["uses"]
    assert held_a == held_b
    for grade in {first, second} - {None}:
        assert grade is not None
        assert not _names_a_grade(text_a, grade), text_a
