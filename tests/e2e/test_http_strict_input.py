"""Every input the API takes is checked strictly, against one catalogue: each finding of
the review that accepted what it should have refused, as a request that is now a clear
4xx and changes nothing."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters.samples import sample_pdf, sample_png
from policy.catalogue import catalogue, shipped_catalogue_text
from policy.scales import Grade
from tests.e2e.conftest import LiveApi
from vault.inputs import GradeUpdate

SOON = (datetime.now(UTC) + timedelta(days=7)).isoformat()


def _consent(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "department": "civil-affairs",
        "doc_types": ["id-card"],
        "purpose": "subsistence-allowance",
        "expires_at": SOON,
    }
    body.update(overrides)
    return body


def _refused(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        problem = response.json()
        named = {problem.get("field")} | {e["field"] for e in problem.get("errors", [])}
        assert any(field in (n or "") for n in named), problem


def _nothing_granted(resident: httpx.Client) -> None:
    assert resident.get("/v1/me/consents").json()["items"] == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"department": "ministry-of-magic"}, "department"),
        ({"purpose": "free-money"}, "purpose"),
        ({"doc_types": [f"invented-{n}" for n in range(2_000)]}, "doc_types"),
        ({"doc_types": ["id-card", "no-such-type"]}, "doc_types"),
        ({"max_uses": "5"}, "max_uses"),
        ({"max_uses": True}, "max_uses"),
        ({"max_uses": 5.5}, "max_uses"),
        ({"max_uses": 0.0}, "max_uses"),
        ({"department": 7}, "department"),
        ({"doc_types": "id-card"}, "doc_types"),
        ({"expires_at": 1893456000}, "expires_at"),
        ({"expires_at": "2030-01-01"}, "expires_at"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"expires_at": "20300101T000000+0800"}, "expires_at"),
        ({"valid_from": "-1"}, "valid_from"),
        ({"granted_by": "the-mayor"}, "granted_by"),
    ],
)
def test_a_consent_naming_what_does_not_exist_or_of_the_wrong_type_is_refused(
    api: LiveApi, overrides: dict[str, Any], field: str
) -> None:
    resident = api.client("resident", "zhang-wei")
    _refused(resident.post("/v1/me/consents", json=_consent(**overrides)), 422, field)
    _nothing_granted(resident)


@pytest.mark.parametrize(
    "overrides",
    [{"expires_at": "2020-01-01T00:00:00+08:00"},
     {"valid_from": "2030-01-02T00:00:00+08:00", "expires_at": "2030-01-01T00:00:00+08:00"}],
    ids=["expiry-past", "expiry-before-start"],
)
def test_a_consents_expiry_is_refused_under_the_name_the_request_used(
    api: LiveApi, overrides: dict[str, str]
) -> None:
    resident = api.client("resident", "zhang-wei")
    response = resident.post("/v1/me/consents", json=_consent(**overrides))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "expires_at"
    assert response.json()["detail"].startswith("expires_at: ")
    _nothing_granted(resident)


def test_an_integral_number_is_an_integer_as_the_schema_says(api: LiveApi) -> None:
    """JSON Schema's "integer" takes 5.0; so does every integer field of a body, while
    "5", true and 5.5 stay refused."""
    resident = api.client("resident", "zhang-wei")
    granted = resident.post("/v1/me/consents", json=_consent(max_uses=5.0))
    assert granted.status_code == 201, granted.text
    assert granted.json()["max_uses"] == 5
    platform = api.client("credit-platform", "credit-platform")
    row = {"resident_id": "zhang-wei", "grade": "B", "effective_at": SOON}
    pushed = platform.post("/v1/credit/grades", json={"updates": [row | {"sequence": 2.0}]})
    assert pushed.status_code == 200, pushed.text
    for sequence in ("3", True, 3.5):
        _refused(platform.post("/v1/credit/grades",
                               json={"updates": [row | {"sequence": sequence}]}),
                 422, "sequence")


def test_a_json_object_naming_a_key_twice_is_refused(api: LiveApi) -> None:
    resident = api.client("resident", "zhang-wei")
    body = json.dumps(_consent())[:-1] + ', "department": "housing"}'
    response = resident.post(
        "/v1/me/consents", content=body, headers={"Content-Type": "application/json"}
    )
    _refused(response, 422, "body")
    assert "'department' twice" in response.json()["detail"]
    _nothing_granted(resident)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ('{"department": NaN}', "application/json", 422),
        ("[" * 30_000 + "]" * 30_000, "application/json", 422),
        (json.dumps(_consent()), "text/plain", 415),
        (json.dumps(_consent()), "application/x-www-form-urlencoded", 415),
    ],
    ids=["nan", "nested-too-deep", "text-plain", "form-encoded"],
)
def test_a_body_that_is_not_plain_json_is_refused(
    api: LiveApi, body: str, content_type: str, status: int
) -> None:
    resident = api.client("resident", "zhang-wei")
    response = resident.post(
        "/v1/me/consents", content=body, headers={"Content-Type": content_type}
    )
    _refused(response, status)
    _nothing_granted(resident)


def _returned_for_a_supplement(api: LiveApi) -> tuple[httpx.Client, str]:
    """A resident's online application, returned by its reviewer for a new ID card."""
    resident = api.client("resident", "li-lei")
    assert _upload(resident).status_code == 201
    api.services.residents.record_grades([GradeUpdate("li-lei", Grade.C, datetime.now(UTC), 1)])
    applied = resident.post("/v1/me/applications", json={"service_id": "elderly-card"})
    assert applied.status_code == 201, applied.text
    application_id = applied.json()["application_id"]
    returned = api.client("officer", "officer-li", "civil-affairs").post(
        f"/v1/applications/{application_id}/decisions",
        json={"decision": "return", "reason": "证件不清晰", "materials": ["id-card"]},
    )
    assert returned.status_code == 200, returned.text
    return resident, f"/v1/me/applications/{application_id}"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ('{"doc_type": "diploma", "doc_type": "id-card", "document_id": "D"}',
         "application/json", 422),
        ('{"doc_type": NaN, "document_id": "D"}', "application/json", 422),
        ("[" * 30_000 + "]" * 30_000, "application/json", 422),
        ('{"doc_type": "id-card", "document_id": "D"}', "text/plain", 415),
        ('{"doc_type": "id-card", "document_id": "D"}', "", 415),
    ],
    ids=["key-twice", "nan", "nested-too-deep", "text-plain", "no-content-type"],
)
def test_a_json_supplement_is_read_as_strictly_as_any_json_body(
    api: LiveApi, body: str, content_type: str, status: int
) -> None:
    """The supplements route takes uploads too, so the guard bounds its body by the
    upload's size; its JSON is read as strictly as every other JSON body all the same."""
    resident, url = _returned_for_a_supplement(api)
    fresh = _upload(resident).json()["document_id"]
    response = resident.post(f"{url}/supplements", content=body.replace('"D"', f'"{fresh}"'),
                             headers={"Content-Type": content_type})
    _refused(response, status, "body" if status == 422 else None)
    assert resident.get(url.replace("/v1/me/", "/v1/")).json()["status"] == "returned"


def _upload(
    client: httpx.Client, *, data: dict[str, str] | None = None, file: bytes | None = None,
    filename: str = "id.pdf", content_type: str = "application/pdf",
) -> httpx.Response:
    form = {"doc_type": "id-card", "title": "居民身份证"}
    form.update(data or {})
    return client.post(
        "/v1/me/documents", data=form,
        files={"file": (filename, sample_pdf() if file is None else file, content_type)},
    )


def _polyglot() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("invoice.exe", b"MZ\x90\x00" + b"\x00" * 60)
    return sample_pdf() + archive.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"data": {"doc_type": "love-letter"}}, 422, "doc_type"),
        ({"data": {"expires_at": "2020-01-01T00:00:00+08:00"}}, 422, "expires_at"),
        ({"data": {"expires_at": "1700000000"}}, 422, "expires_at"),
        ({"data": {"title": "证明\u202egpj.exe"}}, 422, "title"),
        ({"data": {"title": "a\u200bb"}}, 422, "title"),
        ({"filename": "x\u202efdp.exe"}, 422, "filename"),
        ({"file": _polyglot()}, 415, None),
        ({"file": sample_pdf()[:200]}, 415, None),
        ({"file": sample_png(), "content_type": "application/pdf"}, 415, None),
        ({"data": {"attributes": "[" * 5_000}}, 422, "attributes"),
        ({"data": {"attributes": '{"name": "张伟", "name": "李娜"}'}}, 422, "attributes"),
        ({"data": {"attributes": '{"name": NaN}'}}, 422, "attributes"),
    ],
    ids=[
        "unknown-doc-type", "expiry-past", "expiry-unix-time", "bidi-title",
        "zero-width-title", "bidi-filename", "pdf-zip-polyglot", "truncated-pdf",
        "png-declared-pdf", "attributes-nested-too-deep", "attributes-key-twice",
        "attributes-nan",
    ],
)
def test_an_upload_that_is_not_what_it_says_is_refused_and_stores_nothing(
    api: LiveApi, kwargs: dict[str, Any], status: int, field: str | None
) -> None:
    resident = api.client("resident", "zhang-wei")
    _refused(_upload(resident, **kwargs), status, field)
    assert resident.get("/v1/me/documents").json()["items"] == []


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/audit/accesses", {"since": "-1"}, "since"),
        ("/v1/audit/accesses", {"until": "1700000000"}, "until"),
        ("/v1/audit/accesses", {"since": "2026-01-01"}, "since"),
        ("/v1/audit/accesses", {"department": "ministry-of-magic"}, "department"),
        ("/v1/audit/accesses", {"limit": "1.0"}, "limit"),
        ("/v1/audit/accesses", {"limit": "+5"}, "limit"),
        ("/v1/audit/accesses", {"limit": "1_0"}, "limit"),
        ("/v1/audit/replay", {"resident_id": "r1", "at": "0"}, "at"),
        ("/v1/audit/proofs/inclusion", {"event": "1e3", "size": "5"}, "event"),
    ],
)
def test_query_values_are_read_strictly(
    api: LiveApi, path: str, params: dict[str, str], field: str
) -> None:
    _refused(api.client("auditor", "auditor-sun").get(path, params=params), 422, field)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/audit/accesses", {"resident": "zhang-wei"}, "resident"),  # resident_id misspelt
        ("/v1/audit/accesses", {"": "x"}, "query"),
        ("/v1/audit/figures", {"since": "2026-01-01T00:00:00Z"}, "since"),
    ],
)
def test_a_query_parameter_the_route_does_not_take_is_refused(
    api: LiveApi, path: str, params: dict[str, str], field: str
) -> None:
    response = api.client("auditor", "auditor-sun").get(path, params=params)
    _refused(response, 422, field)
    assert "is not a parameter of this route" in response.json()["detail"]


def test_rfc3339_times_in_queries_are_taken(api: LiveApi) -> None:
    auditor = api.client("auditor", "auditor-sun")
    for since in ("2026-01-01T00:00:00Z", "2026-01-01T08:00:00.123456789+08:00"):
        response = auditor.get("/v1/audit/accesses", params={"since": since})
        assert response.status_code == 200, response.text


def test_an_officer_asks_for_services_and_purposes_from_the_catalogue(api: LiveApi) -> None:
    officer = api.client("officer", "officer-li", "civil-affairs")
    _refused(officer.get("/v1/services/free-money/tracks", params={"resident_id": "r1"}),
             422, "service_id")
    _refused(officer.get("/v1/residents/r1/documents", params={"purpose": "free-money"}),
             422, "purpose")


def test_the_catalogue_names_everything_the_checks_accept(api: LiveApi) -> None:
    response = api.client("resident", "zhang-wei").get("/v1/catalogue")
    assert response.status_code == 200
    served = response.json()
    known = catalogue()
    for key, kind in (("units", "unit"), ("departments", "department"),
                      ("document_types", "doc_type"), ("categories", "category"),
                      ("services", "service"), ("tracks", "track")):
        assert {e["id"] for e in served[key]} == {e.id for e in known.of_kind(kind)}
        assert all(e["name_zh"] and e["name_en"] for e in served[key])
    departments = {d["id"] for d in served["departments"]}
    doc_types = {d["id"] for d in served["document_types"]}
    for service in served["services"]:
        assert service["department"] in departments
        assert service["doc_types"]
        assert set(service["doc_types"]) <= doc_types
        assert service["steps"][0]["order"] == 1
        for material in service["materials"]:
            assert material["min_trust"] in {"A", "B", "C", "D"}
        for field in service["form"]:
            doc_type, attribute = field["source"].split(".")
            attributes = next(d for d in served["document_types"] if d["id"] == doc_type)
            assert attribute in attributes["attributes"]
    units = {u["id"]: u for u in served["units"]}
    assert {u["level"] for u in units.values()} == {"city", "district", "street", "community"}
    assert all(u["parent"] in units for u in units.values() if u["level"] != "city")
    subsistence = next(s for s in served["services"] if s["id"] == "subsistence-allowance")
    assert subsistence["name_zh"] == "低保申请"
    assert subsistence["accepted_at"] == ["street", "community"]
    assert served["version"] == known.version
    assert api.client().get("/v1/catalogue").status_code == 401


def test_the_served_catalogue_and_the_checks_follow_a_published_one(api: LiveApi) -> None:
    resident = api.client("resident", "zhang-wei")
    consent = {"department": "civil-affairs", "doc_types": ["pet-licence"],
               "purpose": "subsistence-allowance", "expires_at": "2099-01-01T00:00:00Z"}
    _refused(resident.post("/v1/me/consents", json=consent), 422, "doc_types")
    version = api.services.catalogues.publish(
        shipped_catalogue_text()
        + '\n[[doc_type]]\nid = "pet-licence"\nname_zh = "犬类登记证"\nname_en = "Dog licence"\n'
    ).value
    served = resident.get("/v1/catalogue").json()
    assert served["version"] == version
    assert "pet-licence" in {d["id"] for d in served["document_types"]}
    assert resident.post("/v1/me/consents", json=consent).status_code == 201
    openapi = resident.get("/openapi.json").text
    assert '"pet-licence"' in openapi  # the ids a field takes follow the catalogue too


def test_document_bytes_are_served_as_an_attachment_browsers_must_not_run(
    api: LiveApi,
) -> None:
    resident = api.client("resident", "zhang-wei")
    document = _upload(resident, filename="身份证.pdf").json()["document_id"]
    path = f"/v1/me/documents/{document}/content"
    saved = resident.get(path)
    assert saved.status_code == 200
    assert saved.headers["x-content-type-options"] == "nosniff"
    assert saved.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert saved.headers["cache-control"] == "private, no-store"
    assert saved.headers["content-disposition"].startswith("attachment; filename*=UTF-8''")
    shown = resident.get(path, params={"disposition": "inline"})
    assert shown.headers["content-disposition"].startswith("inline;")
    assert shown.headers["content-security-policy"] == "sandbox; default-src 'none'"
    _refused(resident.get(path, params={"disposition": "execute"}), 422, "disposition")

    resident.post("/v1/me/consents", json=_consent())
    officer = api.client("officer", "officer-li", "civil-affairs")
    fetched = officer.get(
        f"/v1/residents/zhang-wei/documents/{document}/content",
        params={"purpose": "subsistence-allowance"},
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["content-disposition"].startswith("attachment;")
    assert fetched.headers["x-content-type-options"] == "nosniff"


def test_a_method_the_path_does_not_answer_is_a_405_naming_every_one_it_does(
    api: LiveApi,
) -> None:
    resident = api.client("resident", "zhang-wei")
    response = resident.put("/v1/me/documents/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")
    assert set(response.headers["allow"].split(", ")) == {"GET", "DELETE"}


def test_the_openapi_document_describes_every_refusal_as_problem_json(api: LiveApi) -> None:
    document = httpx.get(f"{api.base_url}/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status, response in responses.items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (
                        method, path, status,
                    )
            if path.startswith("/v1/"):
                assert operation["security"] == [{"bearer": []}]
                assert "401" in responses, (method, path)
                if operation.get("parameters") or "requestBody" in operation:
                    assert "422" in responses, (method, path)
            if method in ("post", "delete") and path.startswith("/v1/"):
                assert "X-Log-Position" in next(
                    r for s, r in responses.items() if s.startswith("2")
                )["headers"]
