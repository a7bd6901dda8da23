"""谁用了我的材料 in a real browser: 张伟's access log lists a fetch allowed and one denied,
with their departments' names; each entry's badge is checked by Chromium itself
(SubtleCrypto: the leaf's hash, the inclusion path to the checkpoint's root, the
checkpoint's Ed25519 signature) and says so, and says it failed when one byte of a proof is
changed on its way; an entry's evidence bundle downloads as the file the API's proof makes;
another resident's entries are not there; without a session the page sends to /signin."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from projections.evidence import verify_bundle
from tests.e2e.conftest import LiveApi
from tests.e2e.pages import browser, demo, open_page, shot, sign_in
from vault.errors import AccessDenied

pytestmark = pytest.mark.slow  # a browser, seconds a test: `make test-quick` leaves them out

__all__ = ["browser", "demo"]  # fixtures


def _id_card(demo: LiveApi) -> str:
    [card] = [d for d in demo.services.views.library("zhang-wei", limit=50)
              if d.doc_type == "id-card"]
    return card.document_id


def _accesses(demo: LiveApi) -> tuple[str, str]:
    """民政局 reads 张伟's ID card for 低保申请 (allowed: he consented); 住建局 asks for it for
    住房补贴 (denied: no consent). Both signed into a checkpoint. Their access ids."""
    services = demo.services
    card = _id_card(demo)
    allowed = services.fetches.fetch(
        officer="officer-li", department="civil-affairs", resident_id="zhang-wei",
        document_id=card, purpose="subsistence-allowance",
    )
    b"".join(allowed.content)
    with pytest.raises(AccessDenied) as denied:
        services.fetches.fetch(
            officer="officer-zhou", department="housing", resident_id="zhang-wei",
            document_id=card, purpose="housing-subsidy",
        )
    _signed(demo)
    return str(allowed.access.id), str(denied.value.access_id)


def _signed(demo: LiveApi) -> None:
    """The read models and the ledger caught up, and a checkpoint signed over everything."""
    demo.services.view_runner.catch_up()
    demo.services.ledger.catch_up()
    demo.services.ledger.checkpoint()


def _entry(page: Any, access_id: str) -> Any:
    return page.locator(f'li.access[data-access-id="{access_id}"]')


def _badge_turns(page: Any, access_id: str, state: str) -> Any:
    badge = _entry(page, access_id).locator(f'.badge[data-state="{state}"]')
    badge.wait_for(timeout=10_000)
    return badge


def _api_log(demo: LiveApi) -> dict[str, Any]:
    token = demo.token("resident", "zhang-wei")
    answer = httpx.get(f"{demo.base_url}/v1/me/access-log", params={"limit": 200},
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    log: dict[str, Any] = answer.json()
    return log


def _session_client(demo: LiveApi, subject: str = "zhang-wei") -> httpx.Client:
    from keys.tokens import Principal

    cookie, _ = demo.app.state.web_sessions.start(
        Principal(subject=subject, role="resident", department=None, token_id=None))
    return httpx.Client(base_url=demo.base_url, cookies={"cv_session": cookie})


def test_the_log_lists_allowed_and_denied_accesses_and_the_browser_verifies_each(
    browser: Any, demo: LiveApi
) -> None:
    allowed, denied = _accesses(demo)
    seen: list[str] = []
    page = open_page(browser, demo, seen)
    errors: list[str] = []  # a script the CSP refused, or one that threw, would show here
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, "resident", "/me")
    page.goto("/me/access")
    assert page.locator("h1").inner_text() == "谁用了我的材料"

    shown = _entry(page, allowed)
    assert shown.locator(".department").inner_text() == "民政局"
    assert shown.locator(".outcome").inner_text() == "已提供"
    assert shown.locator(".officer").inner_text() == "officer-li"
    assert "低保申请" in shown.locator(".purpose").inner_text()
    assert "居民身份证" in shown.inner_text()
    refused = _entry(page, denied)
    assert refused.locator(".department").inner_text() == "住建局"
    assert refused.locator(".outcome").inner_text() == "已拒绝"
    assert "住房补贴" in refused.locator(".purpose").inner_text()
    # The resident reads the whole reason, not only its code.
    reason = refused.locator('.reasons li[data-code="no-consent"]')
    assert "您没有授权该部门为这项用途调取" in reason.inner_text()
    assert "no consent from the resident lets housing fetch id-card" in reason.inner_text()
    # Newest first: the denial came last.
    events = [int(e) for e in page.locator("li.access").evaluate_all(
        "items => items.map(i => i.dataset.event)")]
    assert events == sorted(events, reverse=True)

    for access_id in (allowed, denied):
        badge = _badge_turns(page, access_id, "verified")
        assert badge.inner_text() == "已验证"
        assert badge.get_attribute("data-signature") == "signed"  # Ed25519 in SubtleCrypto
    # Every entry of the page checks out, the demo's own issues and verifications too.
    page.wait_for_function(
        "() => [...document.querySelectorAll('li.access .badge')]"
        ".every(b => b.dataset.state === 'verified')")
    shot(page, "me-access-zh")

    with page.expect_navigation():  # the same address: wait for the new page
        page.get_by_role("button", name="English").click()
    page.wait_for_url(re.compile(r"/me/access$"))
    assert page.locator("h1").inner_text() == "Who used my data"
    housing = "Housing and Urban-Rural Development Bureau"
    assert _entry(page, denied).locator(".department").inner_text() == housing
    assert _entry(page, denied).locator(".outcome").inner_text() == "Denied"
    assert _badge_turns(page, allowed, "verified").inner_text() == "Verified"
    page.wait_for_function(
        "() => [...document.querySelectorAll('li.access .badge')]"
        ".every(b => b.dataset.state === 'verified')")
    shot(page, "me-access-en")
    page.set_viewport_size({"width": 360, "height": 740})  # a phone: nothing wider than it
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert errors == []
    assert all(url.startswith(demo.base_url) for url in seen), seen
    page.context.close()


def test_a_proof_changed_by_one_byte_on_its_way_fails_its_badge_alone(
    browser: Any, demo: LiveApi
) -> None:
    allowed, denied = _accesses(demo)
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    event = demo.services.views.access_log("zhang-wei", limit=2)[1].position  # the allowed
    assert demo.services.views.access_log("zhang-wei", limit=2)[1].access_id == allowed

    def flip_a_byte(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        leaf = bytearray(base64.b64decode(body["items"][0]["ledger"]["leaf"]))
        leaf[-2] ^= 0x01  # one bit of the stored record's last bytes
        body["items"][0]["ledger"]["leaf"] = base64.b64encode(bytes(leaf)).decode()
        route.fulfill(response=answer, body=json.dumps(body))

    page.route(f"**/me/access/{event}/proof", flip_a_byte)
    page.goto("/me/access")
    assert _badge_turns(page, allowed, "failed").inner_text() == "校验失败"
    assert _badge_turns(page, denied, "verified").inner_text() == "已验证"
    page.context.close()


def test_a_changed_inclusion_path_or_root_fails_too(browser: Any, demo: LiveApi) -> None:
    allowed, denied = _accesses(demo)
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    [newest, second] = demo.services.views.access_log("zhang-wei", limit=2)
    assert (newest.access_id, second.access_id) == (denied, allowed)

    def flip_path(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        path = body["items"][0]["ledger"]["inclusion_path"]
        path[0] = ("0" if path[0][0] != "0" else "1") + path[0][1:]
        route.fulfill(response=answer, body=json.dumps(body))

    def flip_root(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        root = body["checkpoint"]["root_hash"]
        body["checkpoint"]["root_hash"] = root[:-1] + ("0" if root[-1] != "0" else "1")
        route.fulfill(response=answer, body=json.dumps(body))

    def flip_signature(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        signature = bytearray.fromhex(body["checkpoint"]["signature"])
        signature[5] ^= 0x80
        body["checkpoint"]["signature"] = signature.hex()
        route.fulfill(response=answer, body=json.dumps(body))

    third = demo.services.views.access_log("zhang-wei", limit=3)[2]
    page.route(f"**/me/access/{second.position}/proof", flip_path)
    page.route(f"**/me/access/{newest.position}/proof", flip_root)
    page.route(f"**/me/access/{third.position}/proof", flip_signature)
    page.goto("/me/access")
    _badge_turns(page, allowed, "failed")
    _badge_turns(page, denied, "failed")
    _badge_turns(page, third.access_id, "failed")  # the path is right, the signature not
    page.context.close()


def test_without_scripts_the_badge_is_unchecked_and_the_bundle_still_downloads(
    browser: Any, demo: LiveApi
) -> None:
    allowed, _ = _accesses(demo)
    context = browser.new_context(base_url=demo.base_url, locale="zh-CN",
                                  java_script_enabled=False, accept_downloads=True)
    page = context.new_page()
    sign_in(page, "resident", "/me")
    page.goto("/me/access")
    badge = _entry(page, allowed).locator(".badge")
    assert (badge.get_attribute("data-state"), badge.inner_text()) == ("unchecked", "未校验")
    with page.expect_download() as downloading:
        _entry(page, allowed).locator("a.evidence").click()
    bundle = json.loads(Path(downloading.value.path()).read_text(encoding="utf-8"))
    assert [e["access"]["access_id"] for e in bundle["entries"]] == [allowed]
    context.close()


def test_an_erased_resident_has_no_access_log_to_read(demo: LiveApi) -> None:
    mine = _session_client(demo, "chen-jie")
    demo.services.residents.erase("chen-jie")
    assert mine.get("/me/access").status_code == 410
    assert mine.get("/me/access/1/proof").status_code == 410


def test_an_entry_newer_than_the_checkpoint_waits_for_it(browser: Any, demo: LiveApi) -> None:
    _signed(demo)
    services = demo.services
    fetched = services.fetches.fetch(
        officer="officer-li", department="civil-affairs", resident_id="zhang-wei",
        document_id=_id_card(demo), purpose="subsistence-allowance",
    )
    b"".join(fetched.content)
    services.view_runner.catch_up()  # listed, but no checkpoint covers it yet
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    page.goto("/me/access")
    access_id = str(fetched.access.id)
    checkpoint = services.ledger.latest_checkpoint()
    assert checkpoint is not None
    if fetched.position <= checkpoint.tree_size:
        pytest.skip("the server's ledger follower signed a checkpoint in between")
    assert _badge_turns(page, access_id, "pending").inner_text() == "待签入"
    assert _entry(page, access_id).locator("a.evidence").count() == 0
    page.context.close()


def test_the_evidence_bundle_downloads_as_the_api_proves_the_entry(
    browser: Any, demo: LiveApi, tmp_path: Path
) -> None:
    allowed, _ = _accesses(demo)
    page = open_page(browser, demo, [])
    sign_in(page, "resident", "/me")
    page.goto("/me/access")
    with page.expect_download() as downloading:
        _entry(page, allowed).locator("a.evidence").click()
    download = downloading.value
    event = int(_entry(page, allowed).get_attribute("data-event") or 0)
    assert download.suggested_filename == f"civicvault-evidence-{event}.json"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    bundle = json.loads(saved.read_text(encoding="utf-8"))

    api = _api_log(demo)
    [item] = [i for i in api["items"] if i["access_id"] == allowed]
    [entry] = bundle["entries"]
    assert bundle["format"] == "civicvault-evidence/1"
    assert bundle["resident_id"] == "zhang-wei"
    assert entry["event"] == item["event"] == event
    assert entry["access"]["access_id"] == allowed
    assert entry["access"]["department"] == "civil-affairs"
    assert entry["leaf"] == item["ledger"]["leaf"]
    assert entry["leaf_index"] == item["ledger"]["leaf_index"]
    assert entry["leaf_hash"] == item["ledger"]["leaf_hash"]
    assert entry["inclusion_path"] == item["ledger"]["inclusion_path"]
    assert bundle["checkpoint"]["root_hash"] == api["checkpoint"]["root_hash"]
    assert bundle["checkpoint"]["tree_size"] == api["checkpoint"]["tree_size"]
    assert bundle["checkpoint"]["signature"] == api["checkpoint"]["signature"]
    verdict = verify_bundle(bundle, demo.services.signing.public_keys("checkpoints"))
    assert verdict.problems == []
    assert verdict.entries == 1
    page.context.close()


def test_the_pages_proof_is_the_apis_entry(demo: LiveApi) -> None:
    allowed, _ = _accesses(demo)
    [item] = [i for i in _api_log(demo)["items"] if i["access_id"] == allowed]
    proof = _session_client(demo).get(f"/me/access/{item['event']}/proof")
    assert proof.status_code == 200
    assert proof.headers["content-type"] == "application/json"
    assert proof.json()["items"] == [item]


def test_another_residents_entries_are_not_found(demo: LiveApi) -> None:
    card = next(d for d in demo.services.views.library("li-na", limit=50)
                if d.doc_type == "id-card")
    with pytest.raises(AccessDenied) as asked:  # 人社局 for 李娜's, with no consent of hers
        demo.services.fetches.fetch(
            officer="officer-qian", department="human-resources", resident_id="li-na",
            document_id=card.document_id, purpose="employment-subsidy",
        )
    _signed(demo)
    [theirs] = demo.services.views.access_log("li-na", limit=1)
    assert theirs.access_id == str(asked.value.access_id)
    mine = _session_client(demo)
    head = demo.services.events.head()
    for path in (f"/me/access/{theirs.position}/proof", f"/me/access/{theirs.position}/evidence",
                 "/me/access/999999999/proof", "/me/access/0/proof", "/me/access/x1/evidence"):
        assert mine.get(path).status_code == 404, path
    assert theirs.access_id not in mine.get("/me/access").text
    assert demo.services.events.head() == head  # looking records nothing
    # li-na herself reads it.
    assert _session_client(demo, "li-na").get(
        f"/me/access/{theirs.position}/proof").status_code == 200


def test_without_a_resident_session_the_page_sends_to_signin(demo: LiveApi) -> None:
    nobody = httpx.Client(base_url=demo.base_url)
    for path in ("/me/access", "/me/access/1/evidence"):
        answer = nobody.get(path)
        assert (answer.status_code, answer.headers.get("location")) == (303, "/signin"), path
    assert nobody.get("/me/access/1/proof").status_code == 401
    from keys.tokens import Principal

    cookie, _ = demo.app.state.web_sessions.start(Principal(
        subject="officer-li", role="officer", department="civil-affairs", token_id=None))
    officer = httpx.Client(base_url=demo.base_url, cookies={"cv_session": cookie})
    assert officer.get("/me/access").headers.get("location") == "/signin"
    assert officer.get("/me/access/1/proof").status_code == 401


def test_a_page_of_entries_leads_to_the_older_ones(demo: LiveApi) -> None:
    services = demo.services
    card = _id_card(demo)
    for _ in range(21):
        b"".join(services.fetches.fetch(
            officer="officer-li", department="civil-affairs", resident_id="zhang-wei",
            document_id=card, purpose="subsistence-allowance").content)
    services.view_runner.catch_up()
    mine = _session_client(demo)
    first = mine.get("/me/access").text
    assert first.count('class="access ') == 20
    cursor = re.search(r'href="/me/access\?cursor=(\d+)"', first)
    assert cursor is not None
    older = mine.get(f"/me/access?cursor={cursor.group(1)}").text
    total = len(services.views.access_log("zhang-wei", limit=200))
    assert older.count('class="access ') == total - 20
    assert mine.get("/me/access?cursor=abc").status_code == 422

