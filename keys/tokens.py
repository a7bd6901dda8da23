"""Bearer tokens: EdDSA JWTs the vault signs for itself, checked strictly.

The vault signs with its own Ed25519 keys (``SigningKeys`` purpose ``tokens``),
each with a ``kid``; a key keeps verifying after a rotation until it is retired, so
tokens signed before a rotation stay good until they expire or their key is retired.
A deployment may also trust an external identity provider through its JWKS.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from keys.signing import SigningKey

Role = Literal["resident", "officer", "auditor", "credit-platform", "clerk", "supervisor"]
ROLES: tuple[Role, ...] = get_args(Role)
AT_A_UNIT: tuple[Role, ...] = ("clerk", "supervisor")
"""The roles whose token must name a unit (claim ``unit``); an officer's may."""
OWN_ALGORITHMS: tuple[str, ...] = ("EdDSA",)
EXTERNAL_ALGORITHMS: tuple[str, ...] = ("EdDSA", "ES256", "RS256")
_REQUIRED = ["exp", "iat", "nbf", "iss", "aud", "sub"]
# A subject or department is an identifier, printable and short: it is logged, shown on
# pages and (for a resident) names an aggregate. UUIDs and e-mail addresses fit.
_SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}")
_DEPARTMENT = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
SUBJECT_RULE = "sub must be 1 to 128 letters, digits and ._@:+- starting with a letter or digit"
MAX_LIFETIME = timedelta(hours=24)


def is_subject(value: object) -> bool:
    """Whether ``value`` may be a token's subject."""
    return isinstance(value, str) and _SUBJECT.fullmatch(value) is not None


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    subject: str
    role: Role
    department: str | None
    token_id: str | None
    unit: str | None = None
    """The unit (window, street, district …) a clerk, supervisor or officer acts at."""


class InvalidToken(Exception):
    """The token is not one this vault accepts; the message says why (for logs, not clients)."""


def issue_token(
    key: SigningKey,
    *,
    role: Role,
    subject: str,
    department: str | None = None,
    unit: str | None = None,
    ttl: timedelta,
    issuer: str,
    audience: str,
    now: datetime,
) -> str:
    """A signed token for one principal, valid from ``now`` for ``ttl``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "officer" and not department:
        raise ValueError("an officer's token needs a department")
    if role in AT_A_UNIT and not unit:
        raise ValueError(f"a {role}'s token needs a unit")
    if unit and role not in (*AT_A_UNIT, "officer"):
        raise ValueError(f"a {role}'s token names no unit")
    if not is_subject(subject):
        raise ValueError(SUBJECT_RULE)
    if ttl.total_seconds() <= 0:
        raise ValueError("a token's lifetime must be positive")
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "role": role,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    if department:
        claims["dept"] = department
    if unit:
        claims["unit"] = unit
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})


class TokenVerifier:
    """Checks tokens: algorithm allow-list, signature by a known ``kid``, ``exp``, ``nbf``,
    ``iat``, ``iss``, ``aud``, and the claims each role needs."""

    def __init__(
        self,
        own_keys: Callable[[], Mapping[str, Ed25519PublicKey]],
        *,
        issuer: str,
        audience: str,
        leeway: timedelta = timedelta(seconds=30),
        max_lifetime: timedelta = MAX_LIFETIME,
        external: ExternalIssuer | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``now`` is the clock tokens' times are judged by; a token valid for longer than
        ``max_lifetime`` (``exp`` minus ``iat`` or ``nbf``) is refused, so a leaked one
        cannot outlive a day however it was minted."""
        self._max_lifetime = max_lifetime.total_seconds()
        self._own_keys = own_keys
        self._now = now
        self._cached_keys: Mapping[str, Ed25519PublicKey] = {}
        self._keys_read_at = self._unknown_kid_read_at = -1e9
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._external = external
        self._verified: dict[str, _Verified] = {}
        self._verified_lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; :class:`InvalidToken` otherwise.

        A token that passed every check is remembered (up to :data:`VERIFIED_TOKENS`, the
        oldest forgotten first) with its expiry and key id: presented again, it is taken
        while it has not expired and its key still verifies, without decoding it or checking
        its signature again. ``nbf`` and ``iat`` need no second look: once passed, they stay
        passed."""
        with self._verified_lock:
            known = self._verified.get(token)
        if known is not None:
            if known.expires > self._now().timestamp() - self._leeway.total_seconds() and (
                self._key(known.kid, external=known.external) is not None
            ):
                return known.principal
            with self._verified_lock:
                self._verified.pop(token, None)
        principal, verified = self._verify(token)
        with self._verified_lock:
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.pop(next(iter(self._verified)))
            self._verified[token] = verified
        return principal

    def _key(self, kid: str, *, external: bool) -> Any:
        if external:
            return self._external.key(kid) if self._external is not None else None
        return self._own_key(kid)

    def _verify(self, token: str) -> tuple[Principal, _Verified]:
        try:
            header = jwt.get_unverified_header(token)
            claimed_issuer = (
                jwt.decode(token, options={"verify_signature": False}).get("iss")
                if self._external is not None
                else None
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(f"malformed token: {e}") from None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("the token names no key id")
        external = self._external
        is_external = external is not None and claimed_issuer == external.issuer
        key: Any = self._key(kid, external=is_external)
        if external is not None and is_external:
            algorithms, issuer, audience = EXTERNAL_ALGORITHMS, external.issuer, external.audience
        else:
            algorithms, issuer, audience = OWN_ALGORITHMS, self._issuer, self._audience
        if key is None:
            raise InvalidToken(f"unknown key id {kid!r}")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(algorithms),
                issuer=issuer,
                audience=audience,
                # The times are checked below, by this verifier's clock.
                options={
                    "require": _REQUIRED, "strict_aud": True,
                    "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                },
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from None
        _check_times(
            claims, self._now().timestamp(), self._leeway.total_seconds(), self._max_lifetime
        )
        principal = _principal(claims)
        return principal, _Verified(principal, float(claims["exp"]), kid, is_external)


    def _own_key(self, kid: str) -> Ed25519PublicKey | None:
        """Our public key by id, read from the key table at most every few seconds (and
        again, at most once a second, for a key id not seen yet: a fresh rotation)."""
        now = time.monotonic()
        unknown = kid not in self._cached_keys
        if unknown and now - self._unknown_kid_read_at > 1.0:
            self._unknown_kid_read_at = now  # forged key ids cannot make us read on every call
        elif now - self._keys_read_at <= KEYS_FRESH_SECONDS:
            return self._cached_keys.get(kid)
        self._cached_keys = dict(self._own_keys())
        self._keys_read_at = now
        return self._cached_keys.get(kid)


def _check_times(
    claims: Mapping[str, Any], now: float, leeway: float, max_lifetime: float
) -> None:
    """``iat`` and ``nbf`` not after ``now``, ``exp`` after it, each within ``leeway``
    seconds; each a JSON integer (seconds since the epoch: RFC 7519 allows fractions, this
    vault never mints them and refuses them); ``exp`` at most ``max_lifetime`` after both
    ``iat`` and ``nbf``."""
    times: dict[str, int] = {}
    for name in ("iat", "nbf", "exp"):
        value = claims[name]
        if type(value) is not int:  # not 1.5, not "1", not true
            raise InvalidToken(f"the {name} claim must be an integer")
        times[name] = value
    if times["exp"] - min(times["iat"], times["nbf"]) > max_lifetime:
        raise InvalidToken(f"the token is valid for longer than {int(max_lifetime)} s")
    if times["iat"] > now + leeway:
        raise InvalidToken("The token is not yet valid (iat)")
    if times["nbf"] > now + leeway:
        raise InvalidToken("The token is not yet valid (nbf)")
    if times["exp"] <= now - leeway:
        raise InvalidToken("Signature has expired")


KEYS_FRESH_SECONDS = 5.0
VERIFIED_TOKENS = 4096
"""How many verified tokens :meth:`TokenVerifier.verify` remembers."""


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    expires: float  # the ``exp`` claim, seconds since the epoch
    kid: str
    external: bool


def principal_of(claims: Mapping[str, Any]) -> Principal:
    """The principal verified claims name (``sub``, ``role``, ``dept``, ``unit``, ``jti``),
    by the same rules as a token's; :class:`InvalidToken` says why not."""
    return _principal(claims)


def _principal(claims: Mapping[str, Any]) -> Principal:
    role = claims.get("role")
    if role not in ROLES:
        raise InvalidToken(f"role {role!r} is not one of {', '.join(ROLES)}")
    subject = claims["sub"]
    if not is_subject(subject):
        raise InvalidToken(SUBJECT_RULE)
    department = claims.get("dept")
    if role == "officer" and not _is_identifier(department):
        raise InvalidToken("an officer's token must name its department (dept)")
    unit = claims.get("unit")
    if (role in AT_A_UNIT or unit is not None) and not _is_identifier(unit):
        raise InvalidToken(f"a {role}'s token must name its unit (unit)")
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or len(jti) > 128):
        raise InvalidToken("jti must be a string of at most 128 characters")
    return Principal(
        subject=subject,
        role=role,
        department=department if role == "officer" else None,
        token_id=jti if isinstance(jti, str) else None,
        unit=unit if role in (*AT_A_UNIT, "officer") else None,
    )


def _is_identifier(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 64 and _DEPARTMENT.fullmatch(value) is not None


class ExternalIssuer:
    """An identity provider this vault also trusts, by its JWKS document."""

    def __init__(self, issuer: str, audience: str, jwks: Mapping[str, Any]) -> None:
        self.issuer = issuer
        self.audience = audience
        self._keys = {
            jwk["kid"]: jwt.PyJWK(jwk).key for jwk in jwks.get("keys", []) if "kid" in jwk
        }

    @classmethod
    def from_json(cls, issuer: str, audience: str, text: str) -> ExternalIssuer:
        return cls(issuer, audience, json.loads(text))

    def key(self, kid: str) -> Any:
        return self._keys.get(kid)


def public_jwk(kid: str, key: Ed25519PublicKey) -> dict[str, str]:
    """An Ed25519 public key as a JWK (RFC 8037)."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    }
