"""Read-your-writes over HTTP, with concurrent clients, on SQLite and PostgreSQL: a listing
asked for with the position a write answered always shows that write."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from adapters.samples import sample_pdf
from tests.e2e.conftest import LiveApi


@pytest.fixture(params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest) -> LiveApi:
    # The schema first, so that it is dropped only after the server (and its follower)
    # has stopped: fixtures are torn down in the reverse of the order they were set up.
    settings = (
        {} if request.param == "sqlite"
        else {"database_url": request.getfixturevalue("postgres_schema_url")}
    )
    factory: Callable[..., LiveApi] = request.getfixturevalue("live_api_factory")
    return factory(**settings)


def test_each_client_sees_its_own_upload_at_once(live: LiveApi) -> None:
    failures: list[str] = []

    def client(n: int) -> None:
        try:
            rounds(n)
        except Exception as e:  # a thread's error would otherwise pass the test by
            failures.append(f"client {n}: {e!r}")

    def rounds(n: int) -> None:
        token = live.token("resident", f"resident-{n}")
        with httpx.Client(
            base_url=live.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            for round_ in range(5):
                uploaded = http.post(
                    "/v1/me/documents",
                    data={"doc_type": "diploma", "title": f"证书 {n}-{round_}"},
                    files={"file": ("d.pdf", sample_pdf(), "application/pdf")},
                )
                position = uploaded.headers["X-Log-Position"]
                listing = _listing_at(http, position)
                if listing.status_code != 200:
                    failures.append(f"client {n} round {round_}: {listing.status_code} "
                                    f"{listing.text[:300]}")
                    continue
                listed = listing.json()["items"]
                if uploaded.json()["document_id"] not in {d["document_id"] for d in listed}:
                    failures.append(f"client {n} round {round_}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def _listing_at(http: httpx.Client, position: str) -> httpx.Response:
    """The resident's documents once the read models hold ``position``, asked again as a
    client would while the server answers 503 read-models-behind (its bounded wait ran
    out: on a loaded machine the follower can be more than that behind)."""
    for _ in range(10):
        listing = http.get("/v1/me/documents", headers={"X-Min-Log-Position": position})
        if listing.status_code != 503 or listing.json().get("code") != "read-models-behind":
            return listing
        time.sleep(float(listing.headers.get("Retry-After", "1")))
    return listing


def test_a_denied_fetch_shows_in_the_access_log_at_once(live: LiveApi) -> None:
    resident = live.client("resident", "r1")
    uploaded = resident.post(
        "/v1/me/documents",
        data={"doc_type": "id-card", "title": "居民身份证"},
        files={"file": ("id.pdf", sample_pdf(), "application/pdf")},
    ).json()
    housing = httpx.Client(
        base_url=live.base_url,
        headers={"Authorization": f"Bearer {live.token('officer', 'o', 'housing')}"},
    )
    denied = housing.get(
        f"/v1/residents/r1/documents/{uploaded['document_id']}/content",
        params={"purpose": "housing-subsidy"},
    )
    assert denied.status_code == 403
    log: Any = httpx.get(
        f"{live.base_url}/v1/me/access-log",
        headers={
            "Authorization": f"Bearer {live.token('resident', 'r1')}",
            "X-Min-Log-Position": denied.headers["X-Log-Position"],
        },
    ).json()
    assert [(a["department"], a["decision"]) for a in log["items"]] == [("housing", "denied")]


def test_a_position_no_write_reached_is_refused(live: LiveApi) -> None:
    response = live.client("resident", "r1").get(
        "/v1/me/documents", headers={"X-Min-Log-Position": "999999"}
    )
    assert response.status_code == 409  # well formed, but the log has not got there
    assert response.json()["code"] == "position-not-reached"
