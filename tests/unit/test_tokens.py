"""Bearer tokens: issued with a kid, verified strictly, keys read sparingly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keys import tokens
from keys.signing import SigningKey
from keys.tokens import InvalidToken, Principal, TokenVerifier, issue_token, public_jwk
from tests.support import MovableClock


def _token(key: SigningKey, **overrides: object) -> str:
    args: dict[str, object] = {
        "role": "officer",
        "subject": "officer-li",
        "department": "civil-affairs",
        "ttl": timedelta(minutes=5),
        "issuer": "civicvault",
        "audience": "api",
        "now": datetime.now(UTC),
    }
    args.update(overrides)
    return issue_token(key, **args)  # type: ignore[arg-type]


class KeyTable:
    def __init__(self, *keys: SigningKey) -> None:
        self.keys = {k.kid: k.public_key for k in keys}
        self.reads = 0

    def __call__(self) -> dict[str, Ed25519PublicKey]:
        self.reads += 1
        return dict(self.keys)


def test_a_token_names_its_principal() -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    verifier = TokenVerifier(KeyTable(key), issuer="civicvault", audience="api")
    principal = verifier.verify(_token(key))
    assert principal == Principal("officer-li", "officer", "civil-affairs", principal.token_id)
    assert principal.token_id
    resident = verifier.verify(_token(key, role="resident", subject="r1", department=None))
    assert (resident.role, resident.department) == ("resident", None)


def test_officers_need_a_department_and_roles_are_known() -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    with pytest.raises(ValueError, match="department"):
        _token(key, department=None)
    with pytest.raises(ValueError, match="role"):
        _token(key, role="admin")


@pytest.mark.parametrize("role", ["clerk", "supervisor"])
def test_clerks_and_supervisors_act_at_the_unit_their_token_names(role: str) -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    verifier = TokenVerifier(KeyTable(key), issuer="civicvault", audience="api")
    principal = verifier.verify(_token(key, role=role, subject="wang", department=None,
                                       unit="anle"))
    assert (principal.role, principal.unit, principal.department) == (role, "anle", None)
    with pytest.raises(ValueError, match="unit"):
        _token(key, role=role, subject="wang", department=None)
    with pytest.raises(ValueError, match="names no unit"):
        _token(key, role="auditor", subject="qian", department=None, unit="anle")


def _signed(key: SigningKey, **claims: object) -> str:
    import jwt

    now = int(datetime.now(UTC).timestamp())
    base: dict[str, object] = {"iss": "civicvault", "aud": "api", "sub": "wang", "iat": now,
                               "nbf": now, "exp": now + 60}
    return jwt.encode(base | claims, key.private_key, algorithm="EdDSA",
                      headers={"kid": key.kid})


@pytest.mark.parametrize("unit", [None, "", "Anle", "x" * 65, 5, ["anle"]])
def test_a_clerks_token_without_a_proper_unit_is_refused(unit: object) -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    verifier = TokenVerifier(KeyTable(key), issuer="civicvault", audience="api")
    claims: dict[str, object] = {"role": "clerk"}
    if unit is not None:
        claims["unit"] = unit
    with pytest.raises(InvalidToken, match="unit"):
        verifier.verify(_signed(key, **claims))


def test_an_officer_may_carry_a_unit_and_others_carry_none() -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    verifier = TokenVerifier(KeyTable(key), issuer="civicvault", audience="api")
    officer = verifier.verify(_token(key, unit="heping-street"))
    assert officer.unit == "heping-street"
    resident = verifier.verify(_signed(key, role="resident", unit="anle"))
    assert resident.unit is None


def test_keys_are_read_sparingly_but_a_new_key_is_found_at_once() -> None:
    old = SigningKey("k1", Ed25519PrivateKey.generate())
    table = KeyTable(old)
    verifier = TokenVerifier(table, issuer="civicvault", audience="api")
    for _ in range(20):
        verifier.verify(_token(old))
    assert table.reads == 1
    forged = SigningKey("forged", Ed25519PrivateKey.generate())
    for _ in range(20):
        with pytest.raises(InvalidToken, match="unknown key id"):
            verifier.verify(_token(forged))
    assert table.reads == 1  # no extra read for forged key ids within a second of the last
    new = SigningKey("k2", Ed25519PrivateKey.generate())
    table.keys[new.kid] = new.public_key
    table.reads = 0
    verifier._unknown_kid_read_at -= 2  # the last look for an unknown kid was a while ago
    assert verifier.verify(_token(new)).subject == "officer-li"
    assert table.reads == 1


def test_public_jwk_is_an_okp_key() -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    jwk = public_jwk(key.kid, key.public_key)
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["kid"]) == ("OKP", "Ed25519", "EdDSA", "k1")
    assert len(jwk["x"]) == 43


def test_a_verified_token_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    verifier = TokenVerifier(KeyTable(key), issuer="civicvault", audience="api")
    token = _token(key)
    first = verifier.verify(token)
    decodes: list[str] = []
    decode = tokens.jwt.decode

    def counting(*args: object, **kwargs: object) -> object:
        decodes.append("x")
        return decode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tokens.jwt, "decode", counting)
    assert verifier.verify(token) == first
    assert decodes == []
    other = _token(key, subject="officer-wang")
    assert verifier.verify(other).subject == "officer-wang"
    assert decodes == ["x"]


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    clock = MovableClock()
    verifier = TokenVerifier(
        KeyTable(key), issuer="civicvault", audience="api", leeway=timedelta(0),
        now=clock.now,
    )
    token = _token(key, now=clock.now(), ttl=timedelta(seconds=1))
    verifier.verify(token)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_tokens_are_judged_by_the_verifiers_clock() -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    clock = MovableClock(datetime(2030, 1, 1, tzinfo=UTC))
    verifier = TokenVerifier(
        KeyTable(key), issuer="civicvault", audience="api", leeway=timedelta(0),
        now=clock.now,
    )
    early = _token(key, now=clock.now() + timedelta(minutes=1))
    with pytest.raises(InvalidToken, match="not yet valid"):
        verifier.verify(early)
    clock.advance(timedelta(minutes=1))
    assert verifier.verify(early).subject == "officer-li"
    clock.advance(timedelta(minutes=5))
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(early)


def test_a_remembered_token_is_refused_once_its_key_is_removed() -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    table = KeyTable(key)
    verifier = TokenVerifier(table, issuer="civicvault", audience="api")
    token = _token(key)
    verifier.verify(token)
    del table.keys[key.kid]
    verifier._keys_read_at -= tokens.KEYS_FRESH_SECONDS + 1  # the key table is due a read
    with pytest.raises(InvalidToken, match="unknown key id"):
        verifier.verify(token)


def test_remembered_tokens_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_TOKENS", 3)
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    verifier = TokenVerifier(KeyTable(key), issuer="civicvault", audience="api")
    issued = [_token(key, subject=f"officer-{n}") for n in range(5)]
    for token in issued:
        verifier.verify(token)
    assert list(verifier._verified) == issued[2:]
