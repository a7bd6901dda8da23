"""The FastAPI application: one router per actor, problem responses, metrics, tokens."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig

from adapters.http import (
    applications,
    audit,
    catalogue,
    credit,
    departments,
    public,
    residents,
)
from adapters.http.apidocs import install_api_docs
from adapters.http.contract import install_contract
from adapters.http.deps import catalogue_in_force, no_unknown_query
from adapters.http.guard import Guard, limits_from
from adapters.http.observability import Metrics, Observe, configure_logging
from adapters.http.problems import install_problem_handlers
from adapters.http.server import BoundedHttpToolsProtocol
from adapters.settings import Settings
from adapters.web import (
    access,
    audit_pages,
    me,
    me_applications,
    oidc,
    pages,
    supervision,
    window,
    work,
)
from adapters.web.sessions import WebSessions
from adapters.wiring import Services, open_services
from keys.tokens import ExternalIssuer, Principal, TokenVerifier

STATIC = Path(pages.__file__).parent / "static"


def ledger_lag(services: Services) -> tuple[int, int]:
    """(events not yet in the ledger, events not yet under a signed checkpoint)."""
    head = services.events.head()
    signed = services.ledger.latest_checkpoint()
    return head - services.ledger.size(), head - (signed.tree_size if signed else 0)


NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's own OpenTelemetry hooks, off: the service exports Prometheus metrics and JSON
logs; left on, every request asks OpenTelemetry whether a provider is configured (a few
lookups in the environment each time)."""


def create_app(services: Services, *, owns_services: bool = False) -> FastAPI:
    """The HTTP service over open services; it keeps the read models up to date itself
    unless ``CIVICVAULT_PROJECTIONS_IN_PROCESS`` is false."""
    settings = services.settings
    configure_logging(settings.log_level)
    BoundedHttpToolsProtocol.max_header_bytes = settings.max_header_bytes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        follower = threading.Thread(
            target=services.view_runner.follow, args=(stop,), name="views", daemon=True
        )
        if settings.projections_in_process:
            follower.start()
        try:
            yield
        finally:
            stop.set()
            if follower.is_alive():
                follower.join(10)
            if owns_services:
                services.close()

    app = FastAPI(
        lifespan=lifespan,
        title="civicvault",
        version="1.0",
        description="电子证照库 — residents hand each document over once; departments reuse it "
        "with consent, as policy and credit grades allow; every access is recorded.",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(catalogue_in_force), Depends(no_unknown_query)],
        telemetry=NO_TELEMETRY,
    )
    install_api_docs(app)
    metrics = Metrics()
    app.state.services = services
    app.state.metrics = metrics
    app.state.verifier = verifier = token_verifier(services, settings)
    services.application.on_recorded.append(metrics.events.inc)
    metrics.watch_lag(services.view_runner.lag)
    metrics.watch_ledger(lambda: ledger_lag(services))
    install_problem_handlers(app)
    pages.install_page_handlers(app)
    # The last added runs first: every request is observed, then guarded.
    app.state.limits = limits = limits_from(settings)
    async def signed_in(cookie: str | None) -> Principal | None:
        session = await run_in_threadpool(app.state.web_sessions.find, cookie)
        return session.principal if session is not None else None

    app.add_middleware(Guard, verifier=verifier, limits=limits, signed_in=signed_in,
                       session_cookie=pages.SESSION_COOKIE)
    app.add_middleware(Observe, metrics=metrics)
    for router in (
        residents.router,
        departments.router,
        applications.router,
        credit.router,
        audit.router,
        catalogue.router,
        public.router,
    ):
        app.include_router(router)
    for page_router in (pages.router, oidc.router, me.router, me_applications.router,
                        access.router, window.router, work.router, supervision.router,
                        audit_pages.router):
        app.include_router(page_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.web_sessions = WebSessions(
        services.view_runner.db, services.clock, timedelta(hours=settings.web_session_hours)
    )
    install_contract(app)
    return app


def app_from_environment() -> FastAPI:
    """The service configured from ``CIVICVAULT_*`` alone (for uvicorn workers)."""
    return create_app(open_services(Settings()), owns_services=True)


def token_verifier(services: Services, settings: Settings) -> TokenVerifier:
    """Our own keys (each verifies until it is retired), plus an external issuer if
    configured."""
    external = None
    if settings.external_issuer:
        if settings.external_jwks_file is not None:
            jwks = json.loads(settings.external_jwks_file.read_text())
        elif settings.external_jwks_url:
            with urllib.request.urlopen(settings.external_jwks_url, timeout=10) as response:  # noqa: S310
                jwks = json.loads(response.read())
        else:
            raise ValueError("CIVICVAULT_EXTERNAL_ISSUER needs a JWKS file or URL")
        external = ExternalIssuer(
            settings.external_issuer, settings.external_audience or settings.token_audience, jwks
        )
    return TokenVerifier(
        lambda: services.signing.public_keys("tokens", retired=False),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        leeway=timedelta(seconds=settings.token_leeway_seconds),
        max_lifetime=timedelta(seconds=settings.token_max_lifetime_seconds),
        external=external,
        now=services.clock.now,
    )
