"""Over HTTP, on the embedded default and on PostgreSQL with a real S3 server: a fetch is
charged only when its bytes can go out (issue 15, item 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import urllib3
from minio import Minio

from adapters.blobs_local import LocalBlobStore
from adapters.blobs_s3 import S3BlobStore
from adapters.samples import sample_pdf
from tests.e2e.conftest import LiveApi
from tests.support import free_port

PDF = sample_pdf("a card")


def _world(api: LiveApi, max_uses: int = 1) -> tuple[httpx.Client, str]:
    me = api.client("resident", "zhang-wei")
    document = me.post(
        "/v1/me/documents",
        data={"doc_type": "id-card", "title": "居民身份证"},
        files={"file": ("id.pdf", PDF, "application/pdf")},
    ).json()["document_id"]
    granted = me.post(
        "/v1/me/consents",
        json={"department": "civil-affairs", "doc_types": ["id-card"],
              "purpose": "subsistence-allowance", "max_uses": max_uses,
              "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
    )
    assert granted.status_code == 201, granted.text
    return me, document


def _fetch(api: LiveApi, document: str, **headers: str) -> httpx.Response:
    return api.client("officer", "officer-li", "civil-affairs").get(
        f"/v1/residents/zhang-wei/documents/{document}/content",
        params={"purpose": "subsistence-allowance"}, headers=headers,
    )


@pytest.mark.parametrize(
    "wanted", ["bytes=abc", "bytes=0-1,4-5", "bytes=" + "9" * 5000 + "-", "bytes=5-2", "items=0-"]
)
def test_a_malformed_range_is_refused_before_the_fetch_is_judged(
    api: LiveApi, wanted: str
) -> None:
    me, document = _world(api)
    refused = _fetch(api, document, Range=wanted)
    assert refused.status_code == 416, refused.text
    assert refused.json()["code"] == "range-not-satisfiable"
    assert me.get("/v1/me/access-log").json()["items"] == []  # never judged, never recorded
    assert _fetch(api, document).content == PDF  # the consent's one use is still there


def test_a_range_the_document_lacks_is_recorded_undelivered_and_not_charged(
    api: LiveApi,
) -> None:
    me, document = _world(api)
    refused = _fetch(api, document, Range=f"bytes={len(PDF)}-")
    assert refused.status_code == 416, refused.text
    assert refused.headers["content-range"] == f"bytes */{len(PDF)}"
    [entry] = me.get("/v1/me/access-log").json()["items"]
    assert (entry["decision"], entry["undelivered"]) == ("allowed", "range-not-satisfiable")
    assert me.get("/v1/me/consents").json()["items"][0]["uses"] == 0
    assert _fetch(api, document, Range="bytes=0-3").content == PDF[:4]


@contextmanager
def _blob_store_down(api: LiveApi) -> Iterator[None]:
    """The stack's blob store fails as a real one does: an S3 server nothing answers for, or
    a blob directory the disk cannot open (here a file where the directory was)."""
    store = api.services.blobs
    if isinstance(store, S3BlobStore):
        working = store.client
        store.client = Minio(  # the same SDK, at a port nothing listens on
            f"127.0.0.1:{free_port()}", access_key="k", secret_key="s", secure=False,
            http_client=urllib3.PoolManager(retries=urllib3.util.Retry(total=0)),
        )
        try:
            yield
        finally:
            store.client = working
        return
    assert isinstance(store, LocalBlobStore)
    aside = store.root.with_name(store.root.name + ".aside")
    store.root.rename(aside)
    store.root.write_bytes(b"not a directory")
    try:
        yield
    finally:
        store.root.unlink()
        aside.rename(store.root)


def test_with_the_blob_store_unreachable_uploads_and_fetches_answer_503_and_charge_nothing(
    api: LiveApi,
) -> None:
    me, document = _world(api)
    with _blob_store_down(api):
        fetched = _fetch(api, document)
        assert fetched.status_code == 503, fetched.text
        assert fetched.json()["code"] == "blob-store-unavailable"
        assert fetched.headers["retry-after"]
        assert int(fetched.headers["x-log-position"]) > 0  # where its record landed
        uploaded = me.post(
            "/v1/me/documents",
            data={"doc_type": "diploma", "title": "毕业证书"},
            files={"file": ("d.pdf", PDF, "application/pdf")},
        )
        assert uploaded.status_code == 503, uploaded.text
    [entry] = me.get("/v1/me/access-log").json()["items"]
    assert (entry["decision"], entry["undelivered"]) == ("allowed", "blob-store-unavailable")
    consent: Any = me.get("/v1/me/consents").json()["items"][0]
    assert consent["uses"] == 0
    assert [d["doc_type"] for d in me.get("/v1/me/documents").json()["items"]] == ["id-card"]
    assert _fetch(api, document).content == PDF  # given back: the one use is still there
