"""One-window applications over real HTTP, on the embedded default and on PostgreSQL + S3:
a clerk accepts with the resident's code, the reviewer reads the materials (the resident
sees every read), returns it for a supplement, approves; the resident supplies and rates;
the supervisor sees the figures (issue 16: "a clerk, a reviewer, a resident and a
supervisor can each do all of the above over HTTP")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.samples import sample_pdf
from keys.receipts import verify_consent_receipt
from policy.scales import Grade
from tests.e2e.conftest import LiveApi
from vault.inputs import GradeUpdate


def _upload(client: httpx.Client, doc_type: str, **attributes: str) -> str:
    data = {"doc_type": doc_type, "title": doc_type}
    if attributes:
        data["attributes"] = json.dumps(attributes, ensure_ascii=False)
    response = client.post(
        "/v1/me/documents", data=data,
        files={"file": (f"{doc_type}.pdf", sample_pdf(doc_type), "application/pdf")},
    )
    assert response.status_code == 201, response.text
    document_id: str = response.json()["document_id"]
    return document_id


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def test_a_window_application_from_acceptance_to_rating(api: LiveApi) -> None:
    resident = api.client("resident", "wang-fang")
    card = _upload(resident, "id-card", name="王芳", number="110101198805051234")
    _upload(resident, "household-register", address="和平里3号")
    _problem(resident.post("/v1/me/documents", data={
        "doc_type": "id-card", "title": "x", "attributes": '{"shoe_size": "42"}',
    }, files={"file": ("x.pdf", sample_pdf(), "application/pdf")}), 422, "invalid-input")
    api.services.residents.record_grades(
        [GradeUpdate("wang-fang", Grade.A, datetime.now(UTC), 1)]  # reuse and 容缺
    )
    clerk = api.client("clerk", "clerk-wang", unit="anle")
    supervisor = api.client("supervisor", "supervisor-zhao", unit="dongcheng")
    reviewer = api.client("officer", "officer-li", "civil-affairs")
    stranger = api.client("officer", "officer-zhou", "housing")

    # Without a valid code the clerk learns nothing, and nothing is written.
    api.services.policies.current_version()  # (the shipped policy is recorded on first use)
    head = api.services.events.head()
    _problem(clerk.post("/v1/applications", json={
        "service_id": "subsistence-allowance", "resident_id": "wang-fang",
        "authorization_code": "ABCDEFGH",
    }), 403, "authorization-code-refused")
    assert api.services.events.head() == head

    code = _ok(resident.post("/v1/me/authorization-codes",
                             json={"service_id": "subsistence-allowance"}), 201)
    assert len(code["code"]) == 8
    # A material the library lacks must be named missing; a field must be the form's.
    for wrong in ({}, {"missing": ["income-proof"], "form": {"shoe_size": "42"}}):
        _problem(clerk.post("/v1/applications", json={
            "service_id": "subsistence-allowance", "resident_id": "wang-fang",
            "authorization_code": code["code"], **wrong,
        }), 422, "invalid-input")
    accepted = _ok(clerk.post("/v1/applications", json={
        "service_id": "subsistence-allowance", "resident_id": "wang-fang",
        "authorization_code": code["code"], "missing": ["income-proof"],
        "form": {"address": "江滨路8号"},  # she moved: the clerk corrects it
    }), 201)
    application_id = accepted["application_id"]
    [receipt] = accepted["consent_receipts"]  # one reviewing department, one consent
    terms = verify_consent_receipt(receipt, api.services.signing.public_keys("receipts"))
    assert (terms["sub"], terms["consentReceiptID"]) == ("wang-fang", accepted["consent_ids"][0])
    assert (accepted["status"], accepted["channel"], accepted["unit"]) == (
        "accepted", "window", "anle")
    sources = {m["doc_type"]: m["source"] for m in accepted["materials"]}
    assert sources == {"id-card": "library", "household-register": "library",
                       "income-proof": "missing"}
    # 反填: from her ID card; the address as the clerk corrected it, the register's kept
    assert accepted["form"]["name"] == {
        "value": "王芳", "source": "id-card.name", "document_id": card,
        "replaced_value": None, "replaced_source": None,
    }
    address = accepted["form"]["address"]
    assert (address["value"], address["source"]) == ("江滨路8号", "clerk")
    assert (address["replaced_value"], address["replaced_source"]) == (
        "和平里3号", "household-register.address")
    assert accepted["clock"] == "on-time"
    assert accepted["due_at"]
    # The code is spent.
    _problem(clerk.post("/v1/applications", json={
        "service_id": "subsistence-allowance", "resident_id": "wang-fang",
        "authorization_code": code["code"], "missing": ["income-proof"],
    }), 403, "authorization-code-refused")

    # Who sees it: the clerk's unit and the supervisor above it (without the form's
    # values); a department that reviews none of it does not know it exists.
    url = f"/v1/applications/{application_id}"
    assert _ok(clerk.get(url))["form"]["name"]["value"] == "王芳"
    assert _ok(supervisor.get(url))["form"]["name"]["value"] is None
    _problem(stranger.get(url), 404, "application-not-found")
    _problem(api.client("clerk", "clerk-liu", unit="riverside").get(url), 404,
             "application-not-found")

    # The reviewer finds it in the queue and reads a material under its consent; the
    # resident sees that read.
    queue = _ok(reviewer.get("/v1/work/queue"))
    assert [a["application_id"] for a in queue["items"]] == [application_id]
    read = reviewer.get(f"{url}/materials/id-card/content")
    assert read.status_code == 200
    assert read.content == sample_pdf("id-card")
    log = _ok(resident.get("/v1/me/access-log"))["items"]
    [entry] = [e for e in log if e["access_id"] == read.headers["x-access-id"]]
    assert (entry["department"], entry["purpose"], entry["document_id"], entry["decision"]) \
        == ("civil-affairs", "subsistence-allowance", card, "allowed")
    assert entry["consent_id"] in accepted["consent_ids"]
    _problem(reviewer.get(f"{url}/materials/income-proof/content"), 404, "document-not-found")
    _problem(stranger.get(f"{url}/materials/id-card/content"), 404, "application-not-found")
    _problem(stranger.post(f"{url}/decisions", json={"decision": "approve", "reason": "ok"}),
             404, "application-not-found")

    # Returned for the income proof: the clock stands still until it is supplied.
    returned = _ok(reviewer.post(f"{url}/decisions", json={
        "decision": "return", "reason": "请补充收入证明", "materials": ["income-proof"],
    }))
    assert (returned["status"], returned["clock"], returned["asked_for"]) == (
        "returned", "paused", ["income-proof"])
    assert _ok(reviewer.get("/v1/work/queue", params={"status": "in-review"}))["items"] == []
    _problem(reviewer.post(f"{url}/decisions", json={"decision": "approve", "reason": "ok"}),
             409, "step-moved")
    supplied = _ok(resident.post(
        f"/v1/me/applications/{application_id}/supplements",
        data={"doc_type": "income-proof", "title": "收入证明"},
        files={"file": ("income.pdf", sample_pdf("income"), "application/pdf")},
    ))
    assert (supplied["status"], supplied["clock"]) == ("in-review", "on-time")
    income = [m for m in supplied["materials"] if m["doc_type"] == "income-proof"]
    assert income[0]["source"] == "supplement"
    assert income[0]["document_id"]

    # Approved: the owner's document goes into the resident's library at trust level A.
    approved = _ok(reviewer.post(f"{url}/decisions", json={"decision": "approve",
                                                          "reason": "符合条件"}))
    assert approved["status"] == "approved"
    assert approved["on_time"] is True
    library = _ok(resident.get("/v1/me/documents"))["items"]
    [result] = [d for d in library if d["document_id"] == approved["result_document_id"]]
    assert (result["doc_type"], result["trust_level"]) == ("subsistence-certificate", "A")
    rate = f"/v1/me/applications/{application_id}/rating"
    for bad in (4.5, True, "5"):
        _problem(resident.post(rate, json={"score": bad}), 422, "invalid-input")
    # JSON Schema's "integer" takes 5.0, and so does the route.
    assert _ok(resident.post(rate, json={"score": 5.0, "comment": "很快"}))["rating"]["score"] == 5
    _problem(resident.post(rate, json={"score": 1}), 409, "already-rated")
    mine = _ok(resident.get("/v1/me/applications"))["items"]
    assert [(a["application_id"], a["status"]) for a in mine] == [(application_id, "approved")]

    # The supervisor's figures: the district as a whole, then the street it came through.
    figures = _ok(supervisor.get("/v1/supervision/figures", params={"by": "unit"}))
    expected = {"accepted": 1, "decided": 1, "on_time_rate": 1.0, "overdue": 0,
                "materials_reused": 2, "materials_brought": 1, "trips_saved": 0,
                "rating_avg": 5.0}
    assert [f["key"] for f in figures] == ["dongcheng", "heping-street"]
    for row in figures:
        assert {k: row[k] for k in expected} == expected
    by_service = _ok(supervisor.get("/v1/supervision/figures", params={"by": "service"}))
    assert [f["key"] for f in by_service] == ["dongcheng", "subsistence-allowance"]
    assert _ok(supervisor.get("/v1/supervision/overdue"))["items"] == []
    _problem(supervisor.get("/v1/supervision/figures", params={"unit": "xicheng"}), 403,
             "outside-unit")
    _problem(supervisor.get("/v1/supervision/figures",
                            params={"since": "2026-12-07", "until": "2026-12-01"}),
             422, "invalid-input")


def test_a_resident_applies_online_supplies_from_the_library_and_withdraws(api: LiveApi) -> None:
    resident = api.client("resident", "li-lei")
    _upload(resident, "id-card")
    api.services.residents.record_grades([GradeUpdate("li-lei", Grade.C, datetime.now(UTC), 1)])
    applied = _ok(resident.post("/v1/me/applications",
                                json={"service_id": "elderly-card"}), 201)
    assert (applied["channel"], applied["unit"], applied["status"]) == ("online", None,
                                                                        "accepted")
    url = f"/v1/me/applications/{applied['application_id']}"
    reviewer = api.client("officer", "officer-li", "civil-affairs")
    _ok(reviewer.post(f"/v1/applications/{applied['application_id']}/decisions", json={
        "decision": "return", "reason": "证件不清晰", "materials": ["id-card"],
    }))
    fresh = _upload(resident, "id-card")
    _problem(resident.post(f"{url}/supplements", json={"doc_type": "id-card",
                                                       "document_id": "not-an-id"}),
             422, "invalid-input")
    supplied = _ok(resident.post(f"{url}/supplements",
                                 json={"doc_type": "id-card", "document_id": fresh}))
    assert supplied["status"] == "in-review"
    withdrawn = _ok(resident.post(f"{url}/withdraw"))
    assert (withdrawn["status"], withdrawn["clock"]) == ("withdrawn", None)
    _problem(resident.post(f"{url}/withdraw"), 409, "application-closed")
    # Another resident cannot tell it exists.
    _problem(api.client("resident", "han-mei").post(f"{url}/withdraw"), 404,
             "application-not-found")
    assert _ok(reviewer.get("/v1/work/queue"))["items"] == []
    city = api.client("supervisor", "supervisor-qian", unit="binjiang")
    figures = _ok(city.get("/v1/supervision/figures"))
    assert {f["key"]: (f["accepted"], f["trips_saved"]) for f in figures} == {
        "binjiang": (1, 1), "online": (1, 1)}


def test_a_resident_commits_in_place_of_a_material_accepted_as_missing(api: LiveApi) -> None:
    """告知承诺 after acceptance: POST .../commitments replaces a material the application
    was accepted without (容缺) with the resident's signed commitment, where the service
    and the tracks allow it; refused (and nothing changed) otherwise."""
    resident = api.client("resident", "zhao-lei")
    _upload(resident, "id-card")
    api.services.residents.record_grades([GradeUpdate("zhao-lei", Grade.A, datetime.now(UTC), 1)])
    applied = _ok(resident.post("/v1/me/applications", json={
        "service_id": "employment-subsidy", "missing": ["diploma", "social-insurance-record"],
    }), 201)
    url = f"/v1/me/applications/{applied['application_id']}/commitments"
    _problem(resident.post(url, json={"doc_type": "social-insurance-record"}), 422,
             "invalid-input")  # the service does not let a commitment replace it
    _problem(resident.post(url, json={"doc_type": "id-card"}), 422, "invalid-input")
    _problem(resident.post(url, json={"doc_type": "diploma", "more": 1}), 422,
             "invalid-input")
    _problem(resident.post(url, json={}), 422, "invalid-input")
    _problem(api.client("resident", "han-mei").post(url, json={"doc_type": "diploma"}), 404,
             "application-not-found")
    _problem(resident.post("/v1/me/applications/00000000-0000-4000-8000-000000000000"
                           "/commitments", json={"doc_type": "diploma"}), 404,
             "application-not-found")
    committed = _ok(resident.post(url, json={"doc_type": "diploma"}))
    assert (committed["status"], committed["due_at"]) == (applied["status"], applied["due_at"])
    diploma = next(m for m in committed["materials"] if m["doc_type"] == "diploma")
    assert (diploma["source"], diploma["trust_level"], diploma["document_id"]) == (
        "commitment", "D", None)
    assert "毕业证书" in diploma["statement"]
    _problem(resident.post(url, json={"doc_type": "diploma"}), 422, "invalid-input")
    _ok(resident.post(f"/v1/me/applications/{applied['application_id']}/withdraw"))
    _problem(resident.post(url, json={"doc_type": "social-insurance-record"}), 409,
             "application-closed")
    shown = _ok(resident.get(f"/v1/applications/{applied['application_id']}"))
    assert [m["source"] for m in shown["materials"] if m["doc_type"] == "diploma"] == [
        "commitment"]
