"""Request ids, JSON-lines access logs without personal data, and Prometheus metrics."""

from __future__ import annotations

import itertools
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

    def watch_lag(self, lag: Callable[[], tuple[int, float]]) -> None:
        """Report how far the read models trail the log, read once per scrape."""
        self.registry.register(
            _Pair(
                lag,
                ("civicvault_read_model_lag_events",
                 "Events recorded but not yet in the read models"),
                ("civicvault_read_model_lag_seconds",
                 "How long the oldest event not yet in the read models has waited"),
            )
        )

    def watch_ledger(self, unsigned: Callable[[], tuple[int, int]]) -> None:
        """Report how far the ledger and its newest checkpoint trail the log, read once per
        scrape: a ledger stopped at a gap in the log shows here (and in the logs) while the
        API serves on."""
        self.registry.register(
            _Pair(
                unsigned,
                ("civicvault_ledger_lag_events", "Events recorded but not yet in the ledger"),
                ("civicvault_ledger_unsigned_events",
                 "Events recorded but not yet covered by a signed checkpoint"),
            )
        )

    def decided(self, allowed: bool, reasons: tuple[str, ...]) -> None:
        self.decisions.labels(
            "allowed" if allowed else "denied", reasons[0] if reasons else "allowed"
        ).inc()


class _Pair(Collector):
    """Two gauges read from one call per scrape (the call costs database round trips)."""

    def __init__(
        self,
        read: Callable[[], tuple[float, float]],
        first: tuple[str, str],
        second: tuple[str, str],
    ) -> None:
        self._read = read
        self._names = (first, second)

    def collect(self) -> Iterator[Metric]:
        values = self._read()
        for (name, documentation), value in zip(self._names, values, strict=True):
            yield GaugeMetricFamily(name, documentation, value=value)

    def describe(self) -> Iterator[Metric]:
        for name, documentation in self._names:
            yield GaugeMetricFamily(name, documentation)


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


class Observe:
    """ASGI middleware: give each request an id, time it, count it, log one line about it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # 32 hex digits as before: this process's random half and a count, unique without
        # asking the system for randomness on every request (a GIL hand-off each time).
        prefix = uuid.uuid4().hex[:16]
        self._new_id = (f"{prefix}{n:016x}" for n in itertools.count()).__next__

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode(
            "latin-1"
        )
        request_id = given if _REQUEST_ID.fullmatch(given) else self._new_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, state, request_id, status, time.perf_counter() - started)

    def _record(
        self, scope: Scope, state: dict[str, Any], request_id: str, status: int, elapsed: float
    ) -> None:
        method = scope["method"]
        route = getattr(scope.get("route"), "path", "unmatched")
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.latency.labels(method, route).observe(elapsed)
        # Route templates only: paths carry resident and document ids, which are personal.
        log.info(
            "request",
            extra={
                "fields": {
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "role": state.get("role"),
                }
            },
        )
