"""Declared dependencies the pages need beyond the API's (``adapters.http.deps``): one per
thing a page uses, so that no page reaches into the application's state for it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import Depends, Request

from adapters.eventstore import RecordedLog
from adapters.settings import Settings
from adapters.sql import Database
from adapters.web.sessions import WebSessions
from adapters.wiring import Services
from keys.signing import SigningKeys


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_settings(request: Request) -> Settings:
    return _services(request).settings


async def get_signing(request: Request) -> SigningKeys:
    return _services(request).signing


async def get_events(request: Request) -> RecordedLog:
    return _services(request).events


async def get_database(request: Request) -> Database:
    return _services(request).database


async def get_wait_for_views(request: Request) -> Callable[[int], bool]:
    """Wait until the read models hold a log position, bounded by
    CIVICVAULT_READ_WAIT_SECONDS; False if they do not in time."""
    services = _services(request)
    return partial(services.view_runner.wait_for, timeout=services.settings.read_wait_seconds)


async def get_web_sessions(request: Request) -> WebSessions:
    sessions: WebSessions = request.app.state.web_sessions
    return sessions


SettingsDep = Annotated[Settings, Depends(get_settings)]
SigningDep = Annotated[SigningKeys, Depends(get_signing)]
EventsDep = Annotated[RecordedLog, Depends(get_events)]
DatabaseDep = Annotated[Database, Depends(get_database)]
WaitForViews = Annotated[Callable[[int], bool], Depends(get_wait_for_views)]
WebSessionsDep = Annotated[WebSessions, Depends(get_web_sessions)]
