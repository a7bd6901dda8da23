"""Each actor's journeys over real HTTP, and bad input answered with clear 4xx problems."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from adapters.community import print_welcome, seed
from adapters.demo_city import DemoClock
from adapters.http.downloads import SEND_BYTES
from adapters.samples import sample_pdf, sample_png
from keys.receipts import verify_consent_receipt
from projections import queries
from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser

__all__ = ["browser"]  # a fixture

PDF = sample_pdf("a resident's document")


def _upload(client: httpx.Client, url: str = "/v1/me/documents", **fields: Any) -> httpx.Response:
    content = fields.pop("content", PDF)
    content_type = fields.pop("content_type", "application/pdf")
    data = {"doc_type": "id-card", "title": "居民身份证 张伟", **fields}
    return client.post(url, data=data, files={"file": ("id.pdf", content, content_type)})


def _problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:civicvault:problem:")
    assert body["title"]
    assert body["detail"]
    if code is not None:
        assert body["code"] == code
    return body


def _consent(client: httpx.Client, **overrides: Any) -> httpx.Response:
    body = {
        "department": "civil-affairs",
        "doc_types": ["id-card"],
        "purpose": "subsistence-allowance",
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        **overrides,
    }
    return client.post("/v1/me/consents", json=body)


def test_a_residents_journey(api: LiveApi) -> None:
    me = api.client("resident", "zhang-wei")
    uploaded = _upload(me)
    assert uploaded.status_code == 201, uploaded.text
    document = uploaded.json()
    assert (document["trust_level"], document["doc_type_name"]) == ("C", "居民身份证 (id-card)")
    assert document["sha256"] == hashlib.sha256(PDF).hexdigest()

    library = me.get("/v1/me/documents").json()
    assert [d["document_id"] for d in library["items"]] == [document["document_id"]]
    assert library["next_cursor"] is None

    content = me.get(f"/v1/me/documents/{document['document_id']}/content")
    assert content.content == PDF
    assert content.headers["content-length"] == str(len(PDF))
    assert content.headers["etag"] == f'"{document["sha256"]}"'
    assert content.headers["content-type"] == "application/pdf"

    ranged = me.get(
        f"/v1/me/documents/{document['document_id']}/content", headers={"Range": "bytes=5-14"}
    )
    assert ranged.status_code == 206
    assert ranged.content == PDF[5:15]
    assert ranged.headers["content-range"] == f"bytes 5-14/{len(PDF)}"
    tail = me.get(
        f"/v1/me/documents/{document['document_id']}/content", headers={"Range": "bytes=-4"}
    )
    assert tail.content == PDF[-4:]
    _problem(
        me.get(
            f"/v1/me/documents/{document['document_id']}/content",
            headers={"Range": f"bytes={len(PDF)}-"},
        ),
        416,
    )

    granted = _consent(me)
    assert granted.status_code == 201, granted.text
    consent = granted.json()
    claims = verify_consent_receipt(
        consent["receipt"], api.services.signing.public_keys("receipts")
    )
    assert claims["consentReceiptID"] == consent["consent_id"]
    assert consent["resident_id"] == "zhang-wei"
    assert me.get("/v1/me/consents").json()["items"][0]["status"] == "active"
    revoked = me.post(f"/v1/me/consents/{consent['consent_id']}/revoke")
    assert revoked.json()["status"] == "revoked"
    _problem(me.post(f"/v1/me/consents/{consent['consent_id']}/revoke"), 409)

    withdrawn = me.delete(f"/v1/me/documents/{document['document_id']}")
    assert withdrawn.json()["status"] == "withdrawn"
    assert me.get("/v1/me/documents").json()["items"] == []
    gone = f"/v1/me/documents/{document['document_id']}"  # for its owner too, once withdrawn
    for answer in (me.get(gone), me.get(f"{gone}/content"), me.delete(gone)):
        _problem(answer, 410, "document-withdrawn")

    assert me.post("/v1/me/erase").json() == {"resident_id": "zhang-wei", "erased": True}
    again = me.post("/v1/me/erase")  # a lost answer, asked again: the same, nothing recorded
    assert again.json() == {"resident_id": "zhang-wei", "erased": True}
    assert "x-log-position" not in again.headers
    _problem(me.get("/v1/me/documents"), 410, "resident-erased")


def test_a_document_larger_than_one_piece_streams_whole_and_in_ranges(api: LiveApi) -> None:
    """Above 1 MiB the bytes go out in pieces; a range may span their boundary."""
    me = api.client("resident", "li-na")
    civil = api.client("officer", "officer-li", "civil-affairs")
    big = PDF + os.urandom(2 * SEND_BYTES + 12_345)
    document = _upload(me, content=big).json()
    url = f"/v1/me/documents/{document['document_id']}/content"
    whole = me.get(url)
    assert whole.content == big
    assert whole.headers["content-length"] == str(len(big))
    assert whole.headers["etag"] == f'"{hashlib.sha256(big).hexdigest()}"'
    for first, last in [(SEND_BYTES - 10, SEND_BYTES + 10), (5, 2 * SEND_BYTES + 7)]:
        ranged = me.get(url, headers={"Range": f"bytes={first}-{last}"})
        assert ranged.status_code == 206
        assert ranged.content == big[first : last + 1]
        assert ranged.headers["content-length"] == str(last - first + 1)
    assert me.get(url, headers={"Range": "bytes=-100"}).content == big[-100:]
    _consent(me)
    fetched = civil.get(
        f"/v1/residents/li-na/documents/{document['document_id']}/content",
        params={"purpose": "subsistence-allowance"},
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.content == big


def test_a_departments_journey(api: LiveApi) -> None:
    civil = api.client("officer", "officer-li", "civil-affairs")
    housing = api.client("officer", "officer-zhou", "housing")
    security = api.client("officer", "officer-zhao", "public-security")
    me = api.client("resident", "zhang-wei")

    issued = _upload(
        security,
        "/v1/residents/zhang-wei/documents",
        content=sample_png(),
        content_type="image/png",
    )
    assert issued.status_code == 201, issued.text
    card = issued.json()
    assert (card["trust_level"], card["issuer"]) == ("A", "public-security")
    household = _upload(me, doc_type="household-register", title="户口簿").json()
    verified = civil.post(f"/v1/residents/zhang-wei/documents/{household['document_id']}/verify")
    assert verified.json()["trust_level"] == "B"

    _consent(me, doc_types=["id-card", "household-register"])
    listed = civil.get(
        "/v1/residents/zhang-wei/documents", params={"purpose": "subsistence-allowance"}
    )
    assert {d["document_id"] for d in listed.json()["items"]} == {
        card["document_id"],
        household["document_id"],
    }
    assert (
        housing.get(
            "/v1/residents/zhang-wei/documents", params={"purpose": "housing-subsidy"}
        ).json()["items"]
        == []
    )

    fetched = civil.get(
        f"/v1/residents/zhang-wei/documents/{card['document_id']}/content",
        params={"purpose": "subsistence-allowance"},
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.content == sample_png()
    assert fetched.headers["x-access-id"]

    denied = _problem(
        housing.get(
            f"/v1/residents/zhang-wei/documents/{card['document_id']}/content",
            params={"purpose": "housing-subsidy"},
        ),
        403,
        "access-denied",
    )
    # 住建局 holds no consent of 张伟's: it is told that, and nothing of his grade.
    assert denied["reasons"] == ["no-consent"]
    assert denied["explanations"] == [
        "no consent from the resident lets housing fetch documents for housing-subsidy"
    ]

    _problem(
        civil.get("/v1/services/residence-permit/tracks", params={"resident_id": "zhang-wei"}),
        403,
        "service-not-handled",
    )
    _problem(
        security.get(
            "/v1/services/residence-permit/tracks", params={"resident_id": "zhang-wei"}
        ),
        403,
        "no-consent",
    )
    _consent(me, department="public-security", purpose="residence-permit")
    tracks = security.get(
        "/v1/services/residence-permit/tracks", params={"resident_id": "zhang-wei"}
    )
    assert tracks.json()["tracks"] == []
    assert tracks.json()["reasons"][0] == {"code": "unrated", "text": "no fast-track applies"}

    log = me.get("/v1/me/access-log").json()["items"]
    assert [(a["action"], a["department"], a["decision"]) for a in log] == [
        ("fetch", "housing", "denied"),
        ("fetch", "civil-affairs", "allowed"),
        ("verify", "civil-affairs", "allowed"),
        ("issue", "public-security", "allowed"),
    ]
    # The resident sees every reason, his grade's too.
    assert "grade-too-low" in log[0]["reasons"]
    assert any("below the B" in text for text in log[0]["explanations"])


def test_the_credit_platforms_and_the_auditors_journeys(api: LiveApi) -> None:
    platform = api.client("credit-platform", "credit-platform")
    now = datetime.now(UTC).isoformat()
    pushed = platform.post(
        "/v1/credit/grades",
        json={
            "updates": [
                {"resident_id": "li-na", "grade": "A", "effective_at": now, "sequence": 2},
                {"resident_id": "li-na", "grade": "D", "effective_at": now, "sequence": 1},
            ]
        },
    )
    assert pushed.json() == {"applied": 1, "stale": 1, "erased": 0}
    again = platform.post(
        "/v1/credit/grades",
        json={
            "updates": [{"resident_id": "li-na", "grade": "A", "effective_at": now, "sequence": 2}]
        },
    )
    assert again.json() == {"applied": 0, "stale": 1, "erased": 0}
    assert "x-log-position" in pushed.headers
    bad = _problem(
        platform.post(
            "/v1/credit/grades",
            json={
                "updates": [
                    {"resident_id": "new-one", "grade": "B", "effective_at": now, "sequence": 1},
                    {"resident_id": "new-two", "grade": "Z", "effective_at": now, "sequence": 1},
                ]
            },
        ),
        422,
        "invalid-input",
    )
    assert bad["field"] == "updates[1].grade"
    civil = api.client("officer", "officer-li", "civil-affairs")
    security = api.client("officer", "officer-zhao", "public-security")
    me = api.client("resident", "li-na")
    _consent(me, department="public-security", purpose="residence-permit")
    assert security.get(
        "/v1/services/residence-permit/tracks", params={"resident_id": "li-na"}
    ).json()["tracks"] == ["reuse", "missing-allowed", "priority"]
    _problem(  # a new resident (registered by the grade push) consented to nothing
        security.get("/v1/services/residence-permit/tracks", params={"resident_id": "new-one"}),
        403,
        "no-consent",
    )

    document = _upload(me).json()
    before_consent = datetime.now(UTC)
    _consent(me)
    civil.get(
        f"/v1/residents/li-na/documents/{document['document_id']}/content",
        params={"purpose": "subsistence-allowance"},
    )

    auditor = api.client("auditor", "auditor-sun")
    accesses = auditor.get("/v1/audit/accesses", params={"resident_id": "li-na"}).json()["items"]
    assert [a["decision"] for a in accesses] == ["allowed"]
    assert auditor.get("/v1/audit/accesses", params={"department": "housing"}).json()["items"] == []
    replay = auditor.get(
        "/v1/audit/replay", params={"resident_id": "li-na", "at": before_consent.isoformat()}
    ).json()
    assert replay["grade"] == "A"
    assert [d["document_id"] for d in replay["documents"]] == [document["document_id"]]
    assert [c["department"] for c in replay["consents"]] == ["public-security"]  # not yet 民政局


def test_open_endpoints(api: LiveApi) -> None:
    anyone = api.client()
    assert anyone.get("/healthz").json() == {"status": "ok"}
    ready = anyone.get("/readyz")
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "blobs": "ok", "read_models": "ok"},
    }
    api.client("resident", "r1").get("/v1/me/documents")
    metrics = anyone.get("/metrics").text
    assert (
        'civicvault_http_requests_total{method="GET",route="/v1/me/documents",status="200"}'
        in metrics
    )
    assert "civicvault_events_appended_total" in metrics
    jwks = anyone.get("/.well-known/jwks.json").json()["keys"]
    assert jwks[0]["kty"] == "OKP"
    assert jwks[0]["crv"] == "Ed25519"
    assert anyone.get("/openapi.json").json()["info"]["title"] == "civicvault"


def test_readiness_names_the_store_that_is_down(api: LiveApi) -> None:
    def broken() -> Any:
        raise OSError("disk gone")

    api.services.blobs.list = broken  # type: ignore[method-assign]
    ready = api.client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {
        "database": "ok", "blobs": "unavailable: OSError", "read_models": "ok"
    }


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"content": b"%PDF" + b"x" * 2000}, 413, "too-large"),
        ({"content": b"GIF89a......", "content_type": "image/gif"}, 415, "unsupported-media-type"),
        (
            {"content": b"not a pdf at all", "content_type": "application/pdf"},
            415,
            "unsupported-media-type",
        ),
        ({"doc_type": "ID Card"}, 422, "invalid-input"),
        ({"title": ""}, 422, "invalid-input"),
        ({"expires_at": "next tuesday"}, 422, "invalid-input"),
    ],
)
def test_bad_uploads_get_clear_4xx_and_change_nothing(
    live_api_factory: Any, request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    api = live_api_factory(max_document_bytes=1000)
    me = api.client("resident", "r1")
    me.get("/v1/me/documents")
    events = api.services.events.head()
    _problem(_upload(me, **request_kwargs), status, code)
    assert api.services.events.head() == events
    assert list(api.services.blobs.list()) == []


def test_other_bad_requests_get_clear_4xx(api: LiveApi) -> None:
    me = api.client("resident", "r1")
    _problem(me.post("/v1/me/documents", content=b"x", headers={"Content-Type": "text/plain"}), 415)
    _problem(
        me.post(
            "/v1/me/documents",
            data={"doc_type": "id-card", "title": "t"},
            files={"other": ("x", b"x")},
        ),
        422,
    )
    _problem(me.get("/v1/me/documents/not-a-uuid"), 422, "invalid-input")
    _problem(me.get("/v1/me/documents/00000000-0000-0000-0000-000000000000"), 404)
    _problem(me.get("/v1/me/documents", params={"cursor": "garbage"}), 422, "invalid-input")
    for cursor in ("-1", str(2**63), "1e3", " 1", "1" * 19, "eyJwIjogMX0"):
        _problem(me.get("/v1/me/documents", params={"cursor": cursor}), 422, "invalid-input")
    _problem(me.get("/v1/me/documents", params={"limit": 0}), 422, "invalid-input")
    _problem(_consent(me, expires_at="2020-01-01T00:00:00+00:00"), 422, "invalid-input")
    _problem(_consent(me, expires_at="2030-01-01T00:00:00"), 422, "invalid-input")
    _problem(_consent(me, expires_at="9999-12-31T23:59:59-10:00"), 422, "invalid-input")
    auditor = api.client("auditor", "auditor-1")
    for edge in ({"since": "0001-01-01T00:00:00+14:00"}, {"until": "9999-12-31T23:00:00-10:00"}):
        _problem(auditor.get("/v1/audit/accesses", params=edge), 422, "invalid-input")
    _problem(
        me.post(
            "/v1/me/consents", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        422,
    )
    civil = api.client("officer", "officer-li", "civil-affairs")
    _problem(civil.get("/v1/residents/r1/documents"), 422)
    _problem(civil.get("/v1/residents/r1/documents", params={"purpose": "Not A Purpose"}), 422)
    _problem(api.client().get("/nowhere"), 404, "not-found")
    _problem(me.put("/v1/me/documents"), 405)


def test_a_departments_listing_pages_through_a_long_library_without_gaps(
    api: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fetchable documents are picked from the library read a few at a time (here
    two): pages of them never skip, repeat or show what the department may not fetch."""
    monkeypatch.setattr(queries, "_LIBRARY_PAGE", 2)
    me = api.client("resident", "wang-fang")
    diplomas = []
    for n in range(6):
        diplomas.append(_upload(me, doc_type="diploma", title=f"证书 {n}").json()["document_id"])
        if n % 2:
            _upload(me, doc_type=("id-card", "household-register", "income-proof")[n // 2])
    _consent(
        me, department="human-resources", doc_types=["diploma"], purpose="employment-subsidy"
    )
    hr = api.client("officer", "officer-hr", "human-resources")
    shown, cursor = [], None
    while True:
        page = hr.get(
            "/v1/residents/wang-fang/documents",
            params={"purpose": "employment-subsidy", "limit": 2}
            | ({"cursor": cursor} if cursor else {}),
        ).json()
        shown += [d["document_id"] for d in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert shown == diplomas[::-1]


def test_a_write_that_appends_nothing_answers_no_log_position(api: LiveApi) -> None:
    """Not the position of an earlier request's write served by the same thread, nor
    of a read that wrote (the first reading of the policy publishes the default one)."""
    platform = api.client("credit-platform", "credit-platform")
    security = api.client("officer", "officer-zhao", "public-security")
    _consent(
        api.client("resident", "zhao-lei"), department="public-security",
        purpose="residence-permit",
    )
    now = datetime.now(UTC).isoformat()

    def push(sequence: int) -> httpx.Response:
        update = {"resident_id": "zhao-lei", "grade": "B", "effective_at": now}
        update["sequence"] = sequence
        return platform.post("/v1/credit/grades", json={"updates": [update]})

    assert "x-log-position" in push(1).headers
    for sequence in range(2, 7):
        tracks = security.get(
            "/v1/services/residence-permit/tracks", params={"resident_id": "zhao-lei"}
        )
        assert tracks.status_code == 200
        stale = push(1)
        assert (stale.json()["stale"], stale.headers.get("x-log-position")) == (1, None)
        wrote = push(sequence)
        assert "x-log-position" in wrote.headers
        stale = push(1)
        assert (stale.json()["stale"], stale.headers.get("x-log-position")) == (1, None)


def test_a_write_made_before_serving_is_no_requests_position(
    live_api_factory: Callable[..., LiveApi],
) -> None:
    """``serve --demo`` seeds in the thread that then serves, and every request's context
    is copied from that thread's: a request that writes nothing still answers none."""
    api = live_api_factory(before_serving=lambda s: s.residents.register("seeded"))
    platform = api.client("credit-platform", "credit-platform")
    now = datetime.now(UTC).isoformat()
    update = {"resident_id": "seeded", "grade": "B", "effective_at": now, "sequence": 1}
    applied = platform.post("/v1/credit/grades", json={"updates": [update]})
    assert applied.json()["applied"] == 1
    assert "x-log-position" in applied.headers
    for _ in range(3):
        stale = platform.post("/v1/credit/grades", json={"updates": [update]})
        assert (stale.json()["stale"], stale.headers.get("x-log-position")) == (1, None)


def test_a_consent_receipt_checks_with_a_published_key_and_a_generic_jose_library(
    api: LiveApi,
) -> None:
    """The resident needs only the receipt and /.well-known/receipt-keys.json."""
    receipt = _consent(api.client("resident", "zhang-wei")).json()["receipt"]
    published = httpx.get(f"{api.base_url}/.well-known/receipt-keys.json").json()["keys"]
    kid = jwt.get_unverified_header(receipt)["kid"]
    [jwk] = [k for k in published if k["kid"] == kid]
    claims = jwt.decode(
        receipt, jwt.PyJWK(jwk).key, algorithms=["EdDSA"], options={"verify_aud": False}
    )
    assert claims["sub"] == "zhang-wei"
    # a receipt is kept for years: after its key is rotated out and retired it still checks
    api.services.signing.rotate("receipts")
    api.services.signing.retire(kid)
    published = httpx.get(f"{api.base_url}/.well-known/receipt-keys.json").json()["keys"]
    assert kid in {k["kid"] for k in published}
    assert len(published) == 2
    header, _, signature = receipt.split(".")
    other = jwt.encode({**claims, "sub": "li-na"}, "k" * 32, algorithm="HS256").split(".")[1]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            f"{header}.{other}.{signature}", jwt.PyJWK(jwk).key, algorithms=["EdDSA"],
            options={"verify_aud": False},
        )


def test_the_consents_a_department_holds_say_whose_they_are(api: LiveApi) -> None:
    _consent(api.client("resident", "zhang-wei"))
    held = api.client("officer", "officer-li", "civil-affairs").get("/v1/department/consents")
    assert [c["resident_id"] for c in held.json()["items"]] == ["zhang-wei"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_outside_the_service(api: LiveApi, page: str) -> None:
    """On a government intranet a CDN cannot be reached: every script, style sheet and
    icon the page names is served by the service itself."""
    html = httpx.get(f"{api.base_url}{page}").text
    referenced = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", html)
    referenced += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)
    assert referenced, html
    for url in referenced:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        assert httpx.get(f"{api.base_url}{url}").status_code == 200, url
    assert "cdn." not in html
    assert "fonts.googleapis" not in html


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_carry_a_policy_that_runs_only_the_services_scripts_and_forbids_framing(
    api: LiveApi, page: str
) -> None:
    answer = httpx.get(f"{api.base_url}{page}")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in answer.headers["Content-Security-Policy"].split(";")
    )
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'none'"
    sources = policy["script-src"].split()
    assert sources[0] == "'self'"
    assert all(s.startswith("'sha256-") for s in sources[1:])  # its own inline script only
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.slow
@pytest.mark.parametrize(("page", "shown"), [("/docs", ".swagger-ui .info"),
                                             ("/redoc", "redoc h1")])
def test_the_api_docs_work_in_a_browser_under_their_policy(
    browser: Any, api: LiveApi, page: str, shown: str
) -> None:
    """Chromium renders each page; its policy refuses nothing of the service's own (only
    ReDoc's logo from cdn.redoc.ly, which an intranet could not reach anyway)."""
    refused: list[str] = []
    tab = browser.new_page()
    tab.on("console", lambda m: refused.append(m.text)
           if "Content Security Policy" in m.text else None)
    tab.goto(f"{api.base_url}{page}")
    tab.wait_for_selector(shown, timeout=15_000)
    assert "civicvault" in tab.locator(shown).first.inner_text().lower()
    tab.close()
    assert all(re.search(r"'https://(?!127\.0\.0\.1)", r) for r in refused), refused


def test_every_issue_and_verification_shows_in_the_audit_and_the_residents_log(
    api: LiveApi,
) -> None:
    """Allowed or refused, an attestation is an access the auditor and the resident both see."""
    me = api.client("resident", "zhang-wei")
    document = _upload(me).json()["document_id"]
    education = api.client("officer", "officer-wu", "education")
    security = api.client("officer", "officer-zhao", "public-security")
    _problem(education.post(f"/v1/residents/zhang-wei/documents/{document}/verify"), 403,
             "attestation-denied")
    assert security.post(f"/v1/residents/zhang-wei/documents/{document}/verify").status_code == 200
    _problem(_upload(education, "/v1/residents/zhang-wei/documents"), 403, "attestation-denied")
    issued = _upload(security, "/v1/residents/zhang-wei/documents", doc_type="household-register",
                     title="户口簿")
    assert issued.status_code == 201, issued.text

    expected = [
        ("verify", "education", "id-card", "denied"),
        ("verify", "public-security", "id-card", "allowed"),
        ("issue", "education", "id-card", "denied"),
        ("issue", "public-security", "household-register", "allowed"),
    ]
    audited = api.client("auditor", "auditor-qian").get(
        "/v1/audit/accesses", params={"resident_id": "zhang-wei"}
    ).json()["items"]
    assert [_attempt(a) for a in audited] == expected
    assert all(a["reasons"] for a in audited if a["decision"] == "denied")
    logged = me.get("/v1/me/access-log").json()["items"]
    assert sorted(_attempt(a) for a in logged) == sorted(expected)


def _attempt(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    return entry["action"], entry["department"], entry["doc_type"], entry["decision"]


@pytest.mark.parametrize("who", ["unknown", "erased", "no consent"])
def test_to_a_department_an_unknown_or_erased_resident_lists_like_one_without_consent(
    api: LiveApi, who: str
) -> None:
    """An empty list either way: the listing does not tell an officer who is registered."""
    resident = {"unknown": "nobody-here", "erased": "li-na", "no consent": "wang-fang"}[who]
    if who != "unknown":
        client = api.client("resident", resident)
        assert _upload(client).status_code == 201
        if who == "erased":
            assert client.post("/v1/me/erase").status_code == 200
    listing = api.client("officer", "officer-li", "civil-affairs").get(
        f"/v1/residents/{resident}/documents", params={"purpose": "subsistence-allowance"}
    )
    assert listing.status_code == 200, listing.text
    assert listing.json() == {"items": [], "next_cursor": None}


def test_the_readme_demo_journey_denies_wang_fang_for_her_grade_then_allows_after_a_push(
    live_api_factory: Callable[..., LiveApi],
) -> None:
    """`make run`'s demo, as the README walks it: the printed curl lines work as they say —
    民政局's fetch of 张伟's ID card is allowed; 住建局's of 王芳's is denied for her grade D
    (her consent is live, not expired by the six weeks of history the seed winds back), and
    allowed once the credit platform pushes B as the README shows."""
    clock = DemoClock()
    api = live_api_factory(demo=True, clock=clock,
                           before_serving=lambda services: seed(services, clock))
    out = io.StringIO()
    print_welcome(api.services, api.base_url, out)
    fetches = re.findall(
        r"-H 'Authorization: Bearer ([^']+)' '([^']+/content\?purpose=[a-z-]+)'", out.getvalue()
    )
    (civil, zhang_card), (housing, wang_card) = fetches
    assert "/residents/zhang-wei/" in zhang_card
    assert "/residents/wang-fang/" in wang_card

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    assert httpx.get(zhang_card, headers=bearer(civil)).status_code == 200

    denied = httpx.get(wang_card, headers=bearer(housing))
    assert denied.status_code == 403, denied.text
    assert denied.json()["reasons"] == ["grade-too-low"]
    wang = api.client("resident", "wang-fang")
    log = wang.get("/v1/me/access-log",
                   headers={"X-Min-Log-Position": denied.headers["x-log-position"]})
    [seen] = [a for a in log.json()["items"] if a["department"] == "housing"]
    assert seen["reasons"] == ["grade-too-low"]  # not consent-expired

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [push] = re.findall(r"-d '(\{\"updates\": \[\{\"resident_id\": \"wang-fang\".*?\})'",
                        readme, re.DOTALL)
    platform = api.client("credit-platform", "credit-platform")
    pushed = platform.post("/v1/credit/grades", content=push,
                           headers={"Content-Type": "application/json"})
    assert pushed.json()["applied"] == 1, pushed.text
    allowed = httpx.get(wang_card, headers=bearer(housing))
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["content-type"] == "image/png"
