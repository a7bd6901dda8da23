"""Nothing is parsed before the caller is authenticated, nothing unbounded is held, and
nobody may call as often as they like (issue 15, item 2). Over a real socket where the
point is what the server reads and when."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from adapters.samples import sample_pdf
from tests.e2e.conftest import LiveApi


@pytest.fixture
def api(live_api_factory: Callable[..., LiveApi]) -> LiveApi:
    """The limits stand before any store is touched: the embedded stack is enough here."""
    return live_api_factory()


def _exchange(api: LiveApi, head: str, body: bytes = b"", *, read: int = 65536) -> str:
    """Send a request head (and body bytes) over a socket; what the server answers within
    5 s, without our sending anything more."""
    url = urlparse(api.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as s:
        s.sendall(head.encode("latin-1") + b"\r\n" + body)
        answer = b""
        try:
            while chunk := s.recv(read):
                answer += chunk
                if b"\r\n\r\n" in answer and len(answer) > 200:
                    break
        except TimeoutError:
            pass
    return answer.decode("latin-1", errors="replace")


def _head(path: str, *headers: str, method: str = "POST") -> str:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: x", *headers, ""])


def test_a_body_is_not_read_before_the_caller_is_authenticated(api: LiveApi) -> None:
    """A 60 MiB body announced without a token is answered at once, none of it sent."""
    answer = _exchange(
        api,
        _head("/v1/me/consents", "Content-Type: application/json",
              f"Content-Length: {60 * 1024 * 1024}"),
    )
    assert answer.startswith("HTTP/1.1 401"), answer
    assert "missing-token" in answer


def test_a_body_over_its_routes_limit_is_refused_before_it_is_read(api: LiveApi) -> None:
    token = api.token("resident", "zhang-wei")
    answer = _exchange(
        api,
        _head("/v1/me/consents", f"Authorization: Bearer {token}",
              "Content-Type: application/json", f"Content-Length: {60 * 1024 * 1024}"),
    )
    assert answer.startswith("HTTP/1.1 413"), answer


def test_a_streamed_body_is_cut_off_at_its_routes_limit(api: LiveApi) -> None:
    token = api.token("resident", "zhang-wei")
    chunk = b"x" * 16384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)) + b"0\r\n\r\n"
    answer = _exchange(
        api,
        _head("/v1/me/consents", f"Authorization: Bearer {token}",
              "Content-Type: application/json", "Transfer-Encoding: chunked"),
        body,
    )
    assert answer.startswith("HTTP/1.1 413"), answer


def test_a_header_block_over_the_bound_is_refused_431(api: LiveApi) -> None:
    answer = _exchange(api, _head("/v1/me/documents", "X-Filler: " + "a" * 200_000,
                                  method="GET"))
    assert answer.startswith("HTTP/1.1 431"), answer[:200]


def test_headers_within_the_bound_are_served_on_a_kept_alive_connection(api: LiveApi) -> None:
    url = urlparse(api.base_url)
    request = _head("/healthz", "X-Filler: " + "a" * 20_000, method="GET").encode() + b"\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=5) as s:
        for _ in range(3):  # each request on the connection is counted afresh
            s.sendall(request)
            answer = s.recv(65536).decode()
            assert answer.startswith("HTTP/1.1 200"), answer


def test_a_body_arriving_with_its_head_in_one_read_is_no_header_bytes(api: LiveApi) -> None:
    """A whole request whose body is larger than the header bound, sent in one write (so
    read at once), is answered; only the head counts against the bound."""
    body = b'{"reason": "' + b"x" * 40_000 + b'"}'
    token = api.token("officer", "officer-li", "civil-affairs")
    head = _head(
        "/v1/residents/zhang-wei/documents/00000000-0000-4000-8000-000000000000/revoke",
        f"Authorization: Bearer {token}", "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    )
    answer = _exchange(api, head, body)
    assert answer.startswith("HTTP/1.1 422"), answer[:300]  # the reason is too long


def _form(*parts: tuple[str, bytes]) -> bytes:
    return b"".join(
        b'--b\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
        + value + b"\r\n"
        for name, value in parts
    ) + b"--b--\r\n"


def test_a_flood_of_small_form_parts_stops_at_the_second(api: LiveApi) -> None:
    token = api.token("resident", "zhang-wei")
    body = _form(*[("title", b"x")] * 50)
    answer = _exchange(api, _head(
        "/v1/me/documents", f"Authorization: Bearer {token}",
        "Content-Type: multipart/form-data; boundary=b", f"Content-Length: {len(body)}",
    ), body)
    assert answer.startswith("HTTP/1.1 422"), answer[:300]
    assert "'title' is sent twice" in answer


@pytest.mark.parametrize(
    ("fields", "problem"),
    [({"f0": "x"}, "is not one of"), ({"note": "x"}, "is not one of")],
)
def test_a_form_field_the_route_does_not_take_is_refused(
    api: LiveApi, fields: dict[str, str], problem: str
) -> None:
    me = api.client("resident", "zhang-wei")
    answer = me.post(
        "/v1/me/documents",
        data={"doc_type": "id-card", "title": "x", **fields},
        files={"file": ("x.pdf", sample_pdf(), "application/pdf")},
    )
    assert answer.status_code == 422, answer.text
    assert problem in answer.json()["detail"]
    assert me.get("/v1/me/documents").json()["items"] == []


def test_a_form_field_sent_twice_is_refused(api: LiveApi) -> None:
    token = api.token("resident", "zhang-wei")
    body = _form(("doc_type", b"id-card"), ("title", b"a"), ("title", b"b"))
    answer = _exchange(api, _head(
        "/v1/me/documents", f"Authorization: Bearer {token}",
        "Content-Type: multipart/form-data; boundary=b", f"Content-Length: {len(body)}",
    ), body)
    assert answer.startswith("HTTP/1.1 422"), answer[:300]
    assert "sent twice" in answer


@pytest.mark.parametrize("where", ["title", "filename"])
def test_a_form_field_or_part_header_over_its_bound_is_a_413_and_the_bound_is_a_setting(
    live_api_factory: Callable[..., LiveApi], where: str
) -> None:
    long = "长" * 3000  # 9,000 bytes of UTF-8: over the default 8 KiB
    title, filename = (long, "x.pdf") if where == "title" else ("x", long + ".pdf")
    for field_bytes, status in ((None, 413), (16 * 1024, 422)):
        settings = {} if field_bytes is None else {"max_form_field_bytes": field_bytes}
        api = live_api_factory(**settings)
        me = api.client("resident", "zhang-wei")
        answer = me.post(
            "/v1/me/documents",
            data={"doc_type": "id-card", "title": title},
            files={"file": (filename, sample_pdf(), "application/pdf")},
        )
        # within a larger bound the form is read, and the text is refused for its length
        assert answer.status_code == status, answer.text
        assert me.get("/v1/me/documents").json()["items"] == []


def test_a_grade_push_has_its_own_larger_bound(live_api_factory: Callable[..., LiveApi]) -> None:
    updates = [
        {"resident_id": f"resident-{i:05d}", "grade": "B", "sequence": 1,
         "effective_at": "2026-12-01T00:00:00Z"}
        for i in range(800)
    ]
    body = {"updates": updates}
    size = len(json.dumps(body))
    assert 64 * 1024 < size < 100_000  # over the JSON bound, under the push's
    api = live_api_factory()
    platform = api.client("credit-platform", "credit-platform")
    pushed = platform.post("/v1/credit/grades", json=body)
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["applied"] == 800
    smaller = live_api_factory(max_grade_push_bytes=64 * 1024)
    refused = smaller.client("credit-platform", "credit-platform").post(
        "/v1/credit/grades", json=body
    )
    assert refused.status_code == 413, refused.text
    assert refused.json()["code"] == "too-large"


def test_a_boundary_longer_than_the_standard_allows_is_a_400(api: LiveApi) -> None:
    token = api.token("resident", "zhang-wei")
    boundary = "b" * 300
    answer = _exchange(
        api,
        _head("/v1/me/documents", f"Authorization: Bearer {token}",
              f"Content-Type: multipart/form-data; boundary={boundary}", "Content-Length: 0"),
    )
    assert answer.startswith("HTTP/1.1 400"), answer


def _limited(factory: Callable[..., LiveApi], **limits: Any) -> LiveApi:
    return factory(**limits)


def test_fetches_over_the_limit_get_429_and_record_nothing(
    live_api_factory: Callable[..., LiveApi],
) -> None:
    api = _limited(live_api_factory, rate_limit_fetches="3/minute")
    officer = api.client("officer", "officer-li", "civil-affairs")
    url = "/v1/residents/nobody/documents/00000000-0000-0000-0000-000000000001/content"
    answers = [officer.get(url, params={"purpose": "subsistence-allowance"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [403, 403, 403, 429]  # denied ones count too
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[2].headers["ratelimit-remaining"] == "0"
    refused = answers[3]
    assert refused.json()["code"] == "too-many-requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    api.services.view_runner.catch_up()
    audited = api.services.views.accesses(limit=10)
    assert len(audited) == 3  # the refused request was never judged, so never recorded
    other = api.client("officer", "officer-zhou", "housing")  # each officer counts apart
    assert other.get(url, params={"purpose": "housing-subsidy"}).status_code == 403


def test_writes_over_the_limit_get_429(live_api_factory: Callable[..., LiveApi]) -> None:
    api = _limited(live_api_factory, rate_limit_writes="2/minute")
    me = api.client("resident", "zhang-wei")
    answers = [me.post("/v1/me/erase") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]


def test_failed_authentications_per_address_are_limited(
    live_api_factory: Callable[..., LiveApi],
) -> None:
    api = _limited(live_api_factory, rate_limit_failed_authentications="3/minute")
    anyone = api.client()
    statuses = [
        anyone.get("/v1/me/documents", headers={"Authorization": "Bearer forged"}).status_code
        for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    good = api.client("resident", "zhang-wei")  # a valid token still gets in
    assert good.get("/v1/me/documents").status_code == 200


def test_every_route_that_can_answer_429_documents_it(
    live_api_factory: Callable[..., LiveApi],
) -> None:
    """Once an address has used its budget of failed authentications, every /v1 route
    answers it 429 — counted or not — so every one documents 429 with Retry-After."""
    api = _limited(live_api_factory, rate_limit_failed_authentications="1/minute")
    forged = {"Authorization": "Bearer forged"}
    anyone = api.client()
    assert anyone.get("/v1/me/documents", headers=forged).status_code == 401
    answer = anyone.get(f"/v1/me/documents/{'0' * 8}-0000-4000-8000-{'0' * 12}",
                        headers=forged)
    assert answer.status_code == 429
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert int(answer.headers["Retry-After"]) >= 1
    paths = anyone.get("/openapi.json").json()["paths"]
    undocumented = [
        (method, path)
        for path, item in paths.items() if path.startswith("/v1/")
        for method, operation in item.items()
        if "Retry-After" not in operation["responses"].get("429", {}).get("headers", {})
    ]
    assert undocumented == []


@pytest.mark.parametrize("value", ["lots", "ten/minute", "0/minute", "10/fortnight"])
def test_a_rate_limit_setting_that_does_not_parse_is_refused(value: str) -> None:
    from pydantic import ValidationError

    from adapters.settings import Settings

    with pytest.raises(ValidationError):
        Settings(rate_limit_fetches=value)


def test_an_upload_is_cut_off_when_its_whole_body_passes_the_bound(
    live_api_factory: Callable[..., LiveApi],
) -> None:
    """Bytes the form parser skips (an epilogue after the last part) still count."""
    api = live_api_factory(max_document_bytes=1024)
    token = api.token("resident", "zhang-wei")
    form = (
        b"--b\r\nContent-Disposition: form-data; name=\"doc_type\"\r\n\r\nid-card\r\n"
        b"--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nx\r\n"
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.pdf\"\r\n"
        b"Content-Type: application/pdf\r\n\r\n%PDF-1.4 tiny\r\n--b--\r\n"
    )
    epilogue = b"e" * (400 * 1024)
    chunks = [form, *(epilogue[i : i + 32768] for i in range(0, len(epilogue), 32768))]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    answer = _exchange(
        api,
        _head("/v1/me/documents", f"Authorization: Bearer {token}",
              "Content-Type: multipart/form-data; boundary=b", "Transfer-Encoding: chunked"),
        body,
    )
    assert answer.startswith("HTTP/1.1 413"), answer[:300]


def test_the_pages_writes_and_fetches_count_against_the_same_limits(
    live_api_factory: Callable[..., LiveApi],
) -> None:
    """A page's POST is a write and a page that fetches a document is a fetch, counted per
    signed-in principal as the API's are; over the limit a 429 page, and nothing recorded."""
    from keys.tokens import Principal

    api = _limited(live_api_factory, rate_limit_writes="2/minute",
                   rate_limit_fetches="2/minute")
    sessions = api.app.state.web_sessions
    officer = Principal(subject="officer-li", role="officer", department="civil-affairs",
                        token_id=None)
    cookie, session = sessions.start(officer)
    browser = httpx.Client(base_url=api.base_url, cookies={"cv_session": cookie})
    toggles = [browser.post("/language", data={"csrf": session.csrf, "language": "en"})
               for _ in range(3)]
    assert [t.status_code for t in toggles] == [303, 303, 429]
    assert toggles[2].headers["content-type"].startswith("text/html")
    assert 1 <= int(toggles[2].headers["retry-after"]) <= 60
    url = "/work/fetch/nobody/00000000-0000-0000-0000-000000000001"
    fetches = [browser.get(url, params={"purpose": "subsistence-allowance"})
               for _ in range(2)]
    assert [f.status_code for f in fetches] == [403, 403]  # refused, and recorded
    head = api.services.events.head()
    assert browser.get(url, params={"purpose": "subsistence-allowance"}).status_code == 429
    assert api.services.events.head() == head  # never judged, so never recorded
    # Each principal counts apart; before anyone signs in, the address counts.
    other, other_session = sessions.start(Principal(
        subject="officer-zhou", role="officer", department="housing", token_id=None))
    assert httpx.post(f"{api.base_url}/language", data={"csrf": other_session.csrf},
                      cookies={"cv_session": other}).status_code == 303
    anonymous = [httpx.post(f"{api.base_url}/signin/persona", data={}).status_code
                 for _ in range(3)]
    assert anonymous == [403, 403, 429]
