"""Authentication attacks all get 401; the authorization matrix covers every route and role."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapters.samples import sample_pdf
from keys.signing import SigningKey
from keys.tokens import issue_token
from policy.scales import Grade
from tests.e2e.conftest import TLS, LiveApi
from vault.inputs import GradeUpdate


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(api: LiveApi, **overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": api.services.settings.token_issuer,
        "aud": api.services.settings.token_audience,
        "sub": "officer-li",
        "role": "officer",
        "dept": "civil-affairs",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(api: LiveApi, **overrides: Any) -> str:
    key = api.services.signing.current("tokens")
    return jwt.encode(
        _claims(api, **overrides), key.private_key, algorithm="EdDSA", headers={"kid": key.kid}
    )


def _attacks(api: LiveApi) -> dict[str, str]:
    key = api.services.signing.current("tokens")
    good = _signed(api)
    header, payload, signature = good.split(".")
    public = key.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": key.kid}).encode())
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    hs_body = _b64(json.dumps(_claims(api)).encode())
    hs_signature = _b64(
        __import__("hmac").new(public, f"{hs_header}.{hs_body}".encode(), "sha256").digest()
    )
    tampered = _b64(json.dumps(_claims(api, dept="housing")).encode())
    stranger = SigningKey("tokens-stranger", Ed25519PrivateKey.generate())
    now = datetime.now(UTC)
    return {
        "alg none": f"{none_header}.{payload}.",
        "HS256 keyed with the public key": f"{hs_header}.{hs_body}.{hs_signature}",
        "expired": _signed(api, exp=int((now - timedelta(minutes=5)).timestamp())),
        "not yet valid": _signed(api, nbf=int((now + timedelta(minutes=5)).timestamp())),
        "wrong audience": _signed(api, aud="someone-else"),
        "wrong issuer": _signed(api, iss="evil"),
        "unknown kid": issue_token(
            stranger,
            role="officer",
            subject="o",
            department="civil-affairs",
            ttl=timedelta(minutes=5),
            issuer=api.services.settings.token_issuer,
            audience=api.services.settings.token_audience,
            now=now,
        ),
        "signed by an unknown key under our kid": jwt.encode(
            _claims(api),
            Ed25519PrivateKey.generate(),
            algorithm="EdDSA",
            headers={"kid": key.kid},
        ),
        "tampered payload": f"{header}.{tampered}.{signature}",
        "officer without dept": _signed(api, dept=None),
        "no exp": _signed(api, exp=None),
        "no sub": _signed(api, sub=None),
        "unknown role": _signed(api, role="admin"),
        "exp far beyond any lifetime": _signed(api, exp=1e300),
        "exp as a numeric string": _signed(api, exp=str(int(now.timestamp()) + 600)),
        "exp as a fraction": _signed(api, exp=now.timestamp() + 600.5),
        "iat as true": _signed(api, iat=True),
        "valid for longer than a day": _signed(
            api, exp=int((now + timedelta(hours=24, minutes=5)).timestamp())
        ),
        "a lone surrogate in sub": _signed(api, sub="officer-\ud800"),
        "a right-to-left override in sub": _signed(api, sub="officer\u202eil"),
        "an empty sub": _signed(api, sub=""),
        "a sub of 129 characters": _signed(api, sub="o" * 129),
        "a dept that is no identifier": _signed(api, dept="Civil Affairs"),
        "jti not a string": _signed(api, jti=7),
        "garbage": "not.a.token",
    }


def test_every_token_attack_gets_401(api: LiveApi) -> None:
    client = httpx.Client(base_url=api.base_url)
    ok = client.get(
        "/v1/services/subsistence-allowance/tracks",
        params={"resident_id": "nobody"},
        headers={"Authorization": f"Bearer {_signed(api)}"},
    )
    # The good token gets past authentication (to a resident who consented to nothing).
    assert (ok.status_code, ok.json()["code"]) == (403, "no-consent")
    for name, token in _attacks(api).items():
        response = client.get(
            "/v1/services/subsistence-allowance/tracks",
            params={"resident_id": "nobody"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["code"] == "invalid-token", name
    for header in (None, "Basic dXNlcjpwYXNz", "Token abc", "bearer"):
        response = client.get(
            "/v1/me/documents", headers={"Authorization": header} if header else {}
        )
        assert response.status_code == 401, header


def test_the_longest_token_life_is_a_setting(live_api_factory: Any) -> None:
    api = live_api_factory(token_max_lifetime_seconds=3600)
    client = httpx.Client(base_url=api.base_url)
    for minutes, status in ((60, 200), (61, 401)):
        token = api.token("resident", "r1", ttl=timedelta(minutes=minutes))
        answer = client.get("/v1/me/documents", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == status, answer.text


def test_a_rotated_signing_key_keeps_verifying_until_retired(api: LiveApi) -> None:
    old = api.token("resident", "r1")
    api.services.signing.rotate("tokens")
    client = httpx.Client(base_url=api.base_url)
    new = api.token("resident", "r1")
    for token in (old, new):
        assert (
            client.get("/v1/me/documents", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
    kid = jwt.get_unverified_header(old)["kid"]
    assert kid in {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    api.services.signing.retire(kid)
    api.app.state.verifier._keys_read_at -= 60  # past the verifier's few seconds of key cache
    assert kid not in {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    for token, status in ((old, 401), (new, 200)):
        response = client.get("/v1/me/documents", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status


# The authorization matrix: every route, every role, own and others' resources.

DOC = "{document_id}"
ROLES = ["none", "resident", "other-resident", "officer", "other-officer", "auditor", "credit",
         "clerk", "supervisor"]
# (method, path template) -> expected status per role. "officer" is civil-affairs, which holds
# r1's consent; "other-officer" is housing, which holds none; "other-resident" is r2.
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("POST", "/v1/me/documents"): {"resident": 201, "other-resident": 201},
    ("GET", "/v1/me/documents"): {"resident": 200, "other-resident": 200},
    ("GET", "/v1/me/documents/{document_id}"): {"resident": 200, "other-resident": 404},
    ("GET", "/v1/me/documents/{document_id}/content"): {"resident": 200, "other-resident": 404},
    ("DELETE", "/v1/me/documents/{document_id}"): {"resident": 200, "other-resident": 404},
    ("POST", "/v1/me/consents"): {"resident": 201, "other-resident": 201},
    ("GET", "/v1/me/consents"): {"resident": 200, "other-resident": 200},
    ("POST", "/v1/me/consents/{consent_id}/revoke"): {"resident": 200, "other-resident": 404},
    ("GET", "/v1/me/access-log"): {"resident": 200, "other-resident": 200},
    ("POST", "/v1/me/erase"): {"resident": 200, "other-resident": 200},
    ("GET", "/v1/residents/{resident_id}/documents"): {"officer": 200, "other-officer": 200},
    ("GET", "/v1/residents/{resident_id}/documents/{document_id}/content"): {
        "officer": 200,
        "other-officer": 403,
    },
    # Neither civil-affairs nor housing issues ID cards (public-security does): the policy.
    ("POST", "/v1/residents/{resident_id}/documents"): {"officer": 403, "other-officer": 403},
    ("POST", "/v1/residents/{resident_id}/documents/{document_id}/verify"): {
        "officer": 200,
        "other-officer": 200,
    },
    ("POST", "/v1/residents/{resident_id}/documents/{document_id}/revoke"): {
        "officer": 403,
        "other-officer": 403,
    },
    # civil-affairs handles the service and holds r1's consent for it; housing handles none.
    ("GET", "/v1/services/{service_id}/tracks"): {"officer": 200, "other-officer": 403},
    ("GET", "/v1/department/consents"): {"officer": 200, "other-officer": 200},
    ("GET", "/v1/audit/figures"): {"auditor": 200},
    ("POST", "/v1/credit/grades"): {"credit": 200},
    ("GET", "/v1/audit/accesses"): {"auditor": 200},
    ("GET", "/v1/audit/replay"): {"auditor": 200},
    ("POST", "/v1/audit/readjudicate"): {"auditor": 200},
    ("GET", "/v1/audit/checkpoints/latest"): {"auditor": 200},
    ("GET", "/v1/audit/proofs/inclusion"): {"auditor": 200},
    ("GET", "/v1/audit/proofs/consistency"): {"auditor": 200},
    # Applications: r1's elderly-card application, accepted at clerk-wang's window (anle,
    # under the supervisor's dongcheng), reviewed by civil-affairs alone. To whoever may
    # not see it, it does not exist.
    ("POST", "/v1/me/authorization-codes"): {"resident": 201, "other-resident": 201},
    ("POST", "/v1/me/applications"): {"resident": 201, "other-resident": 422},  # no library
    ("GET", "/v1/me/applications"): {"resident": 200, "other-resident": 200},
    ("POST", "/v1/me/applications/{application_id}/supplements"): {
        "resident": 409, "other-resident": 404,  # nothing is asked for
    },
    ("POST", "/v1/me/applications/{application_id}/commitments"): {
        "resident": 409, "other-resident": 404,  # nothing is missing
    },
    ("POST", "/v1/me/applications/{application_id}/withdraw"): {
        "resident": 200, "other-resident": 404,
    },
    ("POST", "/v1/me/applications/{application_id}/rating"): {
        "resident": 409, "other-resident": 404,  # not decided yet
    },
    ("POST", "/v1/applications"): {"clerk": 201},
    ("GET", "/v1/applications/{application_id}"): {
        "resident": 200, "other-resident": 404, "officer": 200, "other-officer": 404,
        "auditor": 404, "credit": 404, "clerk": 200, "supervisor": 200,
    },
    ("GET", "/v1/applications/{application_id}/materials/{doc_type}/content"): {
        "officer": 200, "other-officer": 404,
    },
    ("POST", "/v1/applications/{application_id}/decisions"): {
        "officer": 200, "other-officer": 404,
    },
    ("GET", "/v1/work/queue"): {"officer": 200, "other-officer": 200},
    ("GET", "/v1/supervision/figures"): {"supervisor": 200},
    ("GET", "/v1/supervision/overdue"): {"supervisor": 200},
    ("GET", "/v1/catalogue"): {r: 200 for r in ROLES if r != "none"},
    ("GET", "/healthz"): dict.fromkeys(ROLES, 200),
    ("GET", "/readyz"): dict.fromkeys(ROLES, 200),
    ("GET", "/metrics"): dict.fromkeys(ROLES, 200),
    ("GET", "/.well-known/jwks.json"): dict.fromkeys(ROLES, 200),
    ("GET", "/.well-known/checkpoint-keys.json"): dict.fromkeys(ROLES, 200),
    ("GET", "/.well-known/receipt-keys.json"): dict.fromkeys(ROLES, 200),
}
PUBLIC = {
    "/healthz", "/readyz", "/metrics", "/.well-known/jwks.json",
    "/.well-known/checkpoint-keys.json", "/.well-known/receipt-keys.json",
}


def _expected(method: str, path: str, role: str) -> int:
    row = MATRIX[(method, path)]
    if role in row:
        return row[role]
    return 401 if role == "none" else 403


def test_every_route_has_a_row_in_the_matrix(api: LiveApi) -> None:
    paths = httpx.get(f"{api.base_url}/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert routes == set(MATRIX)


def _fresh_world(api: LiveApi, n: int) -> dict[str, str]:
    """A resident with a document and a consent for civil-affairs, and another resident."""
    resident, other = f"r{n}", f"other-{n}"
    r1 = api.client("resident", resident)
    document = r1.post(
        "/v1/me/documents",
        data={"doc_type": "id-card", "title": "居民身份证"},
        files={"file": ("id.pdf", sample_pdf(), "application/pdf")},
    ).json()["document_id"]
    consent = r1.post(
        "/v1/me/consents",
        json={
            "department": "civil-affairs",
            "doc_types": ["id-card"],
            "purpose": "subsistence-allowance",
            "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    ).json()["consent_id"]
    api.client("resident", other).get("/v1/me/documents")
    # Graded C, which earns reuse for elderly-card; two codes, one spent on the window's
    # application, one for a clerk to spend.
    api.services.residents.record_grades([GradeUpdate(resident, Grade.C, datetime.now(UTC), 1)])
    api.services.view_runner.catch_up()
    codes = [r1.post("/v1/me/authorization-codes", json={"service_id": "elderly-card"})
             .json()["code"] for _ in range(2)]
    clerk = _at_unit(api, "clerk", "clerk-wang", "anle")
    application = clerk.post("/v1/applications", json={
        "service_id": "elderly-card", "resident_id": resident, "authorization_code": codes[0],
    })
    assert application.status_code == 201, application.text
    return {
        "document_id": document,
        "consent_id": consent,
        "resident_id": resident,
        "other_id": other,
        "service_id": "subsistence-allowance",
        "application_id": application.json()["application_id"],
        "code": codes[1],
        "doc_type": "id-card",
    }


def _call(client: httpx.Client, method: str, path: str, world: dict[str, str]) -> httpx.Response:
    url = path.format(**world)
    if method == "POST" and path.endswith("/documents"):
        return client.post(
            url,
            data={"doc_type": "id-card", "title": "x"},
            files={"file": ("x.pdf", sample_pdf(), "application/pdf")},
        )
    bodies: dict[str, Any] = {
        "/v1/me/consents": {
            "department": "housing",
            "doc_types": ["id-card"],
            "purpose": "housing-subsidy",
            "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        "/v1/credit/grades": {"updates": []},
        "/v1/residents/{resident_id}/documents/{document_id}/revoke": {"reason": "x"},
        "/v1/me/authorization-codes": {"service_id": "elderly-card"},
        "/v1/me/applications": {"service_id": "elderly-card"},
        "/v1/me/applications/{application_id}/supplements": {
            "doc_type": "id-card", "document_id": world["document_id"],
        },
        "/v1/me/applications/{application_id}/commitments": {"doc_type": "id-card"},
        "/v1/me/applications/{application_id}/rating": {"score": 5},
        "/v1/applications": {"service_id": "elderly-card", "resident_id": world["resident_id"],
                             "authorization_code": world["code"]},
        "/v1/applications/{application_id}/decisions": {"decision": "approve", "reason": "ok"},
    }
    params = {
        "/v1/residents/{resident_id}/documents": {"purpose": "subsistence-allowance"},
        "/v1/residents/{resident_id}/documents/{document_id}/content": {
            "purpose": "subsistence-allowance"
        },
        "/v1/services/{service_id}/tracks": {"resident_id": world["resident_id"]},
        "/v1/audit/replay": {
            "resident_id": world["resident_id"],
            "at": datetime.now(UTC).isoformat(),
        },
        "/v1/audit/proofs/inclusion": {"event": 1, "size": 2},
        "/v1/audit/proofs/consistency": {"from": 1, "to": 2},
    }
    return client.request(method, url, json=bodies.get(path), params=params.get(path))


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix(live_api_factory: Any, role: str) -> None:
    # More rows than the default limits let one client make in a minute (they have tests
    # of their own in test_http_limits).
    api = live_api_factory(rate_limit_failed_authentications="1000/minute",
                           rate_limit_writes="1000/minute")
    shared: dict[str, str] = {}
    for n, (method, path) in enumerate(MATRIX):
        # A read changes nothing another row could see, so the reads share one world;
        # each write gets a world of its own.
        if method == "GET":
            world = shared = shared or _fresh_world(api, n)
        else:
            world = _fresh_world(api, n)
        if path.startswith("/v1/audit/"):  # a checkpoint and proofs to ask about
            api.services.ledger.catch_up()
            api.services.ledger.checkpoint()
        response = _call(_client_of(api, role, world), method, path, world)
        assert response.status_code == _expected(method, path, role), (
            role,
            method,
            path,
            response.text,
        )
        if path not in PUBLIC and response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")


def _client_of(api: LiveApi, role: str, world: dict[str, str]) -> httpx.Client:
    """The client of the role a row is asked for."""
    if role == "none":
        return api.client()
    if role in ("clerk", "supervisor"):
        subject, unit = {"clerk": ("clerk-wang", "anle"),
                         "supervisor": ("supervisor-zhao", "dongcheng")}[role]
        return _at_unit(api, role, subject, unit)
    claims: dict[str, tuple[Any, ...]] = {
        "resident": ("resident", world["resident_id"]),
        "other-resident": ("resident", world["other_id"]),
        "officer": ("officer", "officer-li", "civil-affairs"),
        "other-officer": ("officer", "officer-zhou", "housing"),
        "auditor": ("auditor", "auditor-sun"),
        "credit": ("credit-platform", "credit-platform"),
    }
    return api.client(*claims[role])


def _at_unit(api: LiveApi, role: str, subject: str, unit: str) -> httpx.Client:
    token = api.token(role, subject, unit=unit)  # type: ignore[arg-type]
    return httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {token}"},
                        verify=TLS)


# Who issues and who verifies, department by department: the shipped policy's p3 rules.
ISSUERS = {"id-card": {"public-security"}, "diploma": {"education"}}
VERIFIERS = {
    "id-card": {"civil-affairs", "housing", "public-security", "human-resources", "health",
                "disabled-persons"},
    "diploma": {"human-resources"},
}
ALL_DEPARTMENTS = [
    "civil-affairs", "housing", "public-security", "human-resources", "education", "health",
    "tax", "disabled-persons",
]


def test_a_token_for_a_department_the_catalogue_does_not_know_is_refused(api: LiveApi) -> None:
    officer = api.client("officer", "officer-of-nowhere", "no-such-bureau")
    response = officer.get("/v1/department/consents")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    upload = officer.post(
        "/v1/residents/r-nowhere/documents",
        data={"doc_type": "id-card", "title": "x"},
        files={"file": ("x.pdf", sample_pdf(), "application/pdf")},
    )
    assert upload.status_code == 401
    assert api.client("resident", "r-nowhere").get("/v1/me/documents").json()["items"] == []


@pytest.mark.parametrize("path", ["/v1/department/consents", "/v1/work/queue",
                                  "/v1/catalogue"])
def test_an_officers_token_for_a_unit_the_catalogue_does_not_know_is_refused(
    api: LiveApi, path: str
) -> None:
    """As a clerk's or a supervisor's: the docs say an unknown unit is a 401."""
    officer = api.client("officer", "officer-li", "civil-affairs", unit="nowhere")
    response = officer.get(path)
    assert response.status_code == 401, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    at_home = api.client("officer", "officer-li", "civil-affairs", unit="heping-lane")
    assert at_home.get(path).status_code == 200


@pytest.mark.parametrize("department", ALL_DEPARTMENTS)
def test_each_department_issues_and_verifies_only_what_the_policy_names(
    api: LiveApi, department: str
) -> None:
    officer = api.client("officer", f"officer-of-{department}", department)
    resident = api.client("resident", f"r-{department}")
    expected_log = []
    for doc_type in ("id-card", "diploma"):
        issued = officer.post(
            f"/v1/residents/r-{department}/documents",
            data={"doc_type": doc_type, "title": "x"},
            files={"file": ("x.pdf", sample_pdf(), "application/pdf")},
        )
        allowed = department in ISSUERS[doc_type]
        assert issued.status_code == (201 if allowed else 403), (doc_type, issued.text)
        if not allowed:
            problem = issued.json()
            assert problem["code"] == "attestation-denied"
            assert problem["reasons"] == ["no-rule"]
        expected_log.append(("issue", doc_type, "allowed" if allowed else "denied"))
        mine = resident.post(
            "/v1/me/documents",
            data={"doc_type": doc_type, "title": "mine"},
            files={"file": ("m.pdf", sample_pdf(), "application/pdf")},
        ).json()
        verified = officer.post(
            f"/v1/residents/r-{department}/documents/{mine['document_id']}/verify"
        )
        allowed = department in VERIFIERS[doc_type]
        assert verified.status_code == (200 if allowed else 403), (doc_type, verified.text)
        trust = resident.get(f"/v1/me/documents/{mine['document_id']}").json()["trust_level"]
        assert trust == ("B" if allowed else "C")
        expected_log.append(("verify", doc_type, "allowed" if allowed else "denied"))
    library = resident.get("/v1/me/documents").json()["items"]
    issued_types = [d["doc_type"] for d in library if d["trust_level"] == "A"]
    assert sorted(issued_types) == sorted(t for t in ISSUERS if department in ISSUERS[t])
    log = resident.get("/v1/me/access-log").json()["items"]
    assert [(a["action"], a["doc_type"], a["decision"]) for a in reversed(log)] == expected_log
    assert all(a["department"] == department for a in log)
