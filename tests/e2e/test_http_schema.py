"""Schemathesis against the live service's /openapi.json: no 5xx, every response as documented."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.e2e.conftest import LiveApi

EXAMPLES_PER_OPERATION = 25


def _token_for(path: str, api: LiveApi) -> str | None:
    if path.startswith("/v1/me"):
        return api.token("resident", "fuzz-resident")
    if path.startswith(("/v1/residents", "/v1/services")):
        return api.token("officer", "fuzz-officer", "civil-affairs")
    if path.startswith("/v1/credit"):
        return api.token("credit-platform", "fuzz-platform")
    if path.startswith("/v1/audit"):
        return api.token("auditor", "fuzz-auditor")
    return None


@pytest.mark.slow
def test_no_server_errors_and_responses_match_the_schema(api: LiveApi) -> None:
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:
        _fuzz(operation, api)


def _fuzz(operation: Any, api: LiveApi) -> None:
    token = _token_for(operation.path, api)
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: Any) -> None:
        case.call_and_validate(
            headers=headers, checks=[not_a_server_error, response_schema_conformance]
        )

    check()
