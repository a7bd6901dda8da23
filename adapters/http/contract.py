"""The OpenAPI document, made to tell the truth: every response a route can give, with the
problem+json body it really has, the headers that come with it, and the bearer scheme.

Routes declare the statuses of their own failures (``responses=problems(404, 410)``);
what every ``/v1`` route shares is added here, from the same rules the code follows:

- 401 (with ``WWW-Authenticate``) on every ``/v1`` route, and 403 ``wrong-role`` on every
  one but those open to any valid token (:data:`ANY_ROLE`); 410 on a resident's own
  routes (``/v1/me``), for one erased;
- 422 on every route that takes input, as problem+json (FastAPI's own 422 schema, which
  this API never sends, is dropped);
- 400, 413, 415 on every route with a request body; 429 (with ``Retry-After`` and
  ``RateLimit-*``) on every ``/v1`` route: an address over its budget of failed
  authentications is refused on any, a caller over their own limit on the routes the guard
  counts (:func:`adapters.http.guard.counted`);
- 503 ``busy`` on writes; 409 ``position-not-reached`` and 503 ``read-models-behind``
  where a read waits for a log position; ``X-Log-Position`` on the answers of writes.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from adapters.http.fields import CATALOGUE_MARK
from adapters.http.problems import PROBLEM_JSON
from policy.catalogue import Catalogue, Kind, catalogue

ANY_ROLE = frozenset({"/v1/catalogue"})
"""Routes open to any valid token, whatever its role."""

WHY: dict[int, str] = {
    400: "the body is malformed: not UTF-8, or a multipart body that does not parse",
    401: "no token, or one this vault does not accept",
    403: "the token's role may not call this route",
    404: "not found (or not the caller's to see)",
    409: "the state does not allow it",
    410: "the resident is erased",
    413: "the body is over this route's limit",
    415: "the body is not of a type this route takes",
    416: "the range is malformed, or the document has none of its bytes",
    422: "a field is invalid; `field` and `errors` name it",
    429: "over a rate limit (the caller's, or this address's failed authentications); "
    "retry after `Retry-After` seconds",
    503: "a store is unreachable or busy; retry after `Retry-After` seconds",
}


class FieldProblem(BaseModel):
    field: str
    problem: str


class ProblemOut(BaseModel):
    """An error, as RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="urn:civicvault:problem:<code>")
    title: str
    status: int
    detail: str
    code: str = Field(description="stable and machine-readable")
    instance: str | None = None
    request_id: str | None = None
    field: str | None = Field(default=None, description="the invalid field, on a 422")
    errors: list[FieldProblem] | None = None
    reason: str | None = Field(default=None, description="a denied fetch's first reason")
    reasons: list[str] | None = None
    explanations: list[str] | None = None
    access_id: str | None = Field(default=None, description="the recorded attempt")


def problems(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route's own failures, each described (``why_404="…"`` for
    a description of its own); the problem+json body is added to every one later."""
    return {
        status: {"description": descriptions.get(f"why_{status}", WHY[status])}
        for status in statuses
    }


_RETRY_AFTER = {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}
_LOG_POSITION = {
    "description": "where this write landed in the log: send it as X-Min-Log-Position to "
    "read it back",
    "schema": {"type": "integer", "minimum": 1},
}
_RATE = {
    "RateLimit-Limit": {"schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Remaining": {"schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Reset": {"schema": {"type": "integer", "minimum": 0}},
}
_WRITES = frozenset({"post", "put", "patch", "delete"})


def install_contract(app: FastAPI) -> None:
    """Serve the OpenAPI document as this module describes it, built once per catalogue:
    the ids a field takes are listed from the catalogue in force."""
    built_for: list[str] = []

    def openapi() -> dict[str, Any]:
        in_force = catalogue()
        if app.openapi_schema is None or built_for != [in_force.version]:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )
            _complete(schema)
            _list_catalogue_ids(schema, in_force)
            app.openapi_schema = schema
            built_for[:] = [in_force.version]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _list_catalogue_ids(node: Any, in_force: Catalogue) -> None:
    """Give every schema marked ``x-catalogue: KIND`` the ids of that kind as its enum."""
    if isinstance(node, dict):
        kind = node.get(CATALOGUE_MARK)
        if isinstance(kind, str):
            node["enum"] = [entry.id for entry in in_force.of_kind(cast(Kind, kind))]
        for value in node.values():
            _list_catalogue_ids(value, in_force)
    elif isinstance(node, list):
        for value in node:
            _list_catalogue_ids(value, in_force)


def _complete(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = ProblemOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            _complete_operation(path, method, operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _complete_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    has_input = bool(operation.get("parameters")) or "requestBody" in operation
    if path.startswith("/v1/"):
        operation["security"] = [{"bearer": []}]
        _add(responses, 401, headers={"WWW-Authenticate": {"schema": {"type": "string"}}})
        if path not in ANY_ROLE:
            _add(responses, 403)
        if path.startswith("/v1/me/") and path != "/v1/me/erase":  # for one erased
            _add(responses, 410)
        # Every /v1 route: the guard answers 429 to an address that has used its budget of
        # failed authentications, whatever it asks for; the routes it counts, to a caller
        # over their own limit too.
        _add(responses, 429, headers={"Retry-After": _RETRY_AFTER, **_RATE})
    if has_input:
        _add(responses, 422)
    if "requestBody" in operation:
        _add(responses, 400)
        _add(responses, 413)
        _add(responses, 415)
    names = {p["name"].lower() for p in operation.get("parameters", [])}
    if method in _WRITES and path.startswith("/v1/"):
        _add(responses, 503, headers={"Retry-After": _RETRY_AFTER})
        for status, response in responses.items():
            if status.startswith("2"):
                response.setdefault("headers", {})["X-Log-Position"] = _LOG_POSITION
    elif "x-min-log-position" in names:
        _add(responses, 409)  # no write has reached the position asked for
        _add(responses, 503, headers={"Retry-After": _RETRY_AFTER})
    for status, response in responses.items():
        if int(status) >= 400:
            response["content"] = {
                PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
            }


def _add(responses: dict[str, Any], status: int, headers: dict[str, Any] | None = None) -> None:
    response = responses.setdefault(str(status), {"description": WHY[status]})
    if headers:
        response.setdefault("headers", {}).update(headers)
