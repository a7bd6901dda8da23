"""Request ids, JSON-lines access logs without personal data, and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
log = logging.getLogger("civicvault.access")


class Metrics:
    """The service's metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "civicvault_http_requests", "HTTP requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "civicvault_http_request_seconds", "HTTP request latency by route",
            ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.decisions = Counter(
            "civicvault_access_decisions", "Fetch decisions by outcome and first reason",
            ["outcome", "reason"], registry=self.registry,
        )
        self.events = Counter(
            "civicvault_events_appended", "Events appended to the event store",
            registry=self.registry,
        )

    def decided(self, allowed: bool, reasons: tuple[str, ...]) -> None:
        self.decisions.labels(
            "allowed" if allowed else "denied", reasons[0] if reasons else "allowed"
        ).inc()


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger("civicvault")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


Next = Callable[[Request], Awaitable[Response]]


def observe(metrics: Metrics) -> Callable[[Request, Next], Awaitable[Response]]:
    """Middleware: give each request an id, time it, count it, log one line about it."""

    async def middleware(request: Request, call_next: Next) -> Response:
        given = request.headers.get("x-request-id", "")
        request.state.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - started
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route).observe(elapsed)
        response.headers["X-Request-ID"] = request.state.request_id
        # Route templates only: paths carry resident and document ids, which are personal.
        log.info(
            "request",
            extra={
                "fields": {
                    "request_id": request.state.request_id,
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 2),
                    "role": getattr(request.state, "role", None),
                }
            },
        )
        return response

    return middleware
