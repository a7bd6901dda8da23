"""RFC 9457 problem details: every error the API gives, in one shape."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from vault import errors

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("civicvault.http")


class Problem(Exception):
    """An error raised by the HTTP layer itself (authentication, uploads, ranges)."""

    def __init__(
        self, status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}


# Domain errors by class, most specific first: (status, title).
_STATUS: tuple[tuple[type[errors.VaultError], int, str], ...] = (
    (errors.InvalidInput, 422, "Invalid input"),
    (errors.InvalidPolicy, 422, "Invalid policy"),
    (errors.InvalidCatalogue, 422, "Invalid catalogue"),
    (errors.NotFound, 404, "Not found"),
    (errors.ResidentErased, 410, "Resident erased"),
    (errors.DocumentGone, 410, "Document withdrawn"),
    (errors.AccessDenied, 403, "Access denied"),
    (errors.NotTheIssuer, 403, "Not the issuer"),
    (errors.NoConsent, 403, "No consent"),
    (errors.ServiceNotHandled, 403, "Service not handled"),
    (errors.DocumentUnavailable, 409, "Document unavailable"),
    (errors.AlreadyTrusted, 409, "Already trusted"),
    (errors.ConsentAlreadyRevoked, 409, "Consent already revoked"),
    (errors.ApplicationClosed, 409, "Application closed"),
    (errors.StepMoved, 409, "Step moved on"),
    (errors.AlreadyRated, 409, "Already rated"),
    (errors.NotAReviewer, 403, "Not a reviewer"),
    (errors.ServiceNotAcceptedHere, 403, "Service not accepted here"),
    (errors.CodeRefused, 403, "Authorization code refused"),
    (errors.ConsentDenied, 409, "Consent does not allow this"),
    (errors.Contention, 503, "Busy"),
    (errors.BlobStoreUnavailable, 503, "Blob store unavailable"),
    (errors.RangeNotSatisfiable, 416, "Range not satisfiable"),
    (errors.ContentCorrupted, 500, "Stored content failed its integrity check"),
    (errors.BlobMissing, 500, "Stored content is missing"),
)


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:civicvault:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field(location: Sequence[int | str]) -> str:
    """A validation error's location as the API names fields: ``updates[1].grade`` for
    ("body", "updates", 1, "grade"), ``since`` for ("query", "since")."""
    parts = list(location)
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    named = ""
    for part in parts:
        named += f"[{part}]" if isinstance(part, int) else (f".{part}" if named else str(part))
    return named or "body"


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app answers at the request's path."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.routes
        )
    ]


def _status_and_title(error: errors.VaultError) -> tuple[int, str]:
    return next(
        ((s, t) for kind, s, t in _STATUS if isinstance(error, kind)), (500, "Vault error")
    )


def status_of(error: errors.VaultError) -> int:
    """The HTTP status a vault error is answered with (the pages use it too)."""
    return _status_and_title(error)[0]


def install_problem_handlers(app: FastAPI) -> None:
    """Map every failure to a problem response; bad input never becomes a 5xx."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status, exc.code, exc.title, exc.detail, request, headers=exc.headers
        )

    @app.exception_handler(errors.VaultError)
    async def _vault_error(request: Request, exc: errors.VaultError) -> JSONResponse:
        status, title = _status_and_title(exc)
        extra: dict[str, Any] = {}
        if isinstance(exc, errors.AccessDenied):
            extra = {
                "reason": exc.reason_codes[0] if exc.reason_codes else exc.code,
                "reasons": list(exc.reason_codes),
                "explanations": list(exc.reasons),
                "access_id": str(exc.access_id),
            }
        elif isinstance(exc, errors.InvalidInput):
            extra = {"field": exc.field}
        if status >= 500:
            log.error("%s: %s", exc.code, exc)
        headers: dict[str, str] = {}
        if isinstance(exc, errors.Contention):
            headers["Retry-After"] = "1"
        if isinstance(exc, errors.BlobStoreUnavailable):
            headers["Retry-After"] = "5"
        if isinstance(exc, errors.RangeNotSatisfiable):
            extra = {"access_id": str(exc.access_id)}
            headers["Content-Range"] = f"bytes */{exc.size}"
        if exc.position is not None:  # what it recorded, for reading one's own writes
            headers["X-Log-Position"] = str(exc.position)
        return problem_response(status, exc.code, title, str(exc), request, headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": _field(e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        first = problems[0] if problems else {"field": "request", "problem": "is invalid"}
        return problem_response(
            422,
            "invalid-input",
            "Invalid input",
            f"{first['field']}: {first['problem']}",
            request,
            field=first["field"],
            errors=problems,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(
            exc.status_code, code, str(exc.detail), str(exc.detail), request, headers=headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem_response(
            500, "internal-error", "Internal error", "an unexpected error occurred", request
        )
