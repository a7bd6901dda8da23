"""Browser sessions, kept on the server: the cookie holds only a random id (its SHA-256 is
what the table keeps), so signing out ends the session for good, on every worker. Each
session is bound to a principal's claims, as a token is, and carries its own CSRF token."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from keys.tokens import Principal
from projections.database import Database
from projections.schema import stamp, unstamp
from vault.ports import Clock

TABLE = "cv_web_sessions"


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str
    """Sent back with every form and state-changing request of the session."""
    expires_at: datetime


class WebSessions:
    def __init__(self, db: Database, clock: Clock, lifetime: timedelta) -> None:
        self._db = db
        self._clock = clock
        self._lifetime = lifetime
        self._table = db.table(TABLE)
        with db.transaction() as run:
            run.schema_lock()
            run(f"CREATE TABLE IF NOT EXISTS {self._table} (id_hash TEXT PRIMARY KEY, "
                "claims TEXT NOT NULL, csrf TEXT NOT NULL, expires_at TEXT NOT NULL)")

    def start(self, principal: Principal) -> tuple[str, Session]:
        """A new session for ``principal``: the cookie's value, and the session."""
        cookie = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32),
                          self._clock.now() + self._lifetime)
        claims = {"sub": principal.subject, "role": principal.role,
                  "dept": principal.department, "unit": principal.unit}
        with self._db.transaction() as run:
            run(f"DELETE FROM {self._table} WHERE expires_at <= ?", (stamp(self._clock.now()),))
            run(f"INSERT INTO {self._table} (id_hash, claims, csrf, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (_hashed(cookie), json.dumps(claims), session.csrf, stamp(session.expires_at)))
        return cookie, session

    def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, if any."""
        if not cookie or len(cookie) > 64:
            return None
        with self._db.transaction(commit=False) as run:
            rows = run(f"SELECT claims, csrf, expires_at FROM {self._table} WHERE id_hash = ?",
                       (_hashed(cookie),))
        if not rows:
            return None
        claims_text, csrf, expires_text = rows[0]
        expires_at = unstamp(expires_text)
        if expires_at is None or expires_at <= self._clock.now():
            return None
        claims = json.loads(claims_text)
        principal = Principal(subject=claims["sub"], role=claims["role"],
                              department=claims["dept"], token_id=None, unit=claims["unit"])
        return Session(principal, csrf, expires_at)

    def end(self, cookie: str | None) -> None:
        """Sign out: the session is gone on the server, whoever still holds the cookie."""
        if cookie:
            with self._db.transaction() as run:
                run(f"DELETE FROM {self._table} WHERE id_hash = ?", (_hashed(cookie),))


def _hashed(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()
