"""Invariant 2 under real concurrency, on SQLite and PostgreSQL: once a revoke or a withdrawal
is acknowledged, no fetch racing it succeeds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.wiring import Services, open_services
from tests.support import MovableClock, library
from vault.consent import Consent
from vault.document import Document
from vault.errors import AccessDenied, ResidentErased
from vault.inputs import ConsentRequest, DocumentDetails
from vault.markers import ERASED

FETCHERS = 8
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def _race(
    services: Services, document: Document, stop_everything: Callable[[], object]
) -> list[tuple[bool, bool]]:
    """Fetch from many threads; once one is allowed, stop everything, and go on until the
    fetchers have made as many attempts again. Returns (started after ack, allowed)."""
    acknowledged = threading.Event()
    done = threading.Event()
    outcomes: list[tuple[bool, bool]] = []
    lock = threading.Lock()

    def fetcher() -> None:
        while not done.is_set():
            after = acknowledged.is_set()
            try:
                fetched = services.fetches.fetch(
                    officer="o",
                    department="civil-affairs",
                    resident_id="r1",
                    document_id=document.id,
                    purpose="subsistence-allowance",
                )
                b"".join(fetched.content)
                allowed = True
            except AccessDenied:
                allowed = False
            with lock:
                outcomes.append((after, allowed))

    threads = [threading.Thread(target=fetcher) for _ in range(FETCHERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while not any(allowed for _, allowed in outcomes) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop_everything()
    acknowledged.set()
    # Let every fetcher finish at least one fetch begun after the acknowledgement.
    deadline = time.monotonic() + 10
    while sum(after for after, _ in outcomes) < FETCHERS and time.monotonic() < deadline:
        time.sleep(0.01)
    done.set()
    for thread in threads:
        thread.join()
    return outcomes


def _setup(services: Services, clock: MovableClock) -> tuple[Document, Consent]:
    document = services.documents.submit(
        "r1", [b"card"], DocumentDetails(doc_type="id-card", title="居民身份证")
    ).value
    consent = services.consents.grant(
        "r1",
        ConsentRequest(
            department="civil-affairs",
            doc_types=("id-card",),
            purpose="subsistence-allowance",
            valid_until=clock.now() + timedelta(days=1),
        ),
    ).consent
    return document, consent


def _names(services: Services, aggregate_id: Any) -> list[str]:
    return [type(e).__name__ for e in services.application.events.get(aggregate_id)]


def test_no_fetch_succeeds_after_an_acknowledged_revoke(
    services: Services, clock: MovableClock
) -> None:
    document, consent = _setup(services, clock)
    outcomes = _race(services, document, lambda: services.consents.revoke("r1", consent.id))
    assert any(allowed for _, allowed in outcomes), "the race never had a fetch allowed"
    assert any(after for after, _ in outcomes), "no fetch started after the acknowledgement"
    assert not [o for o in outcomes if o == (True, True)]
    history = _names(services, consent.id)
    assert "Used" not in history[history.index("Revoked") :]


def test_no_fetch_succeeds_after_an_acknowledged_withdrawal(
    services: Services, clock: MovableClock
) -> None:
    document, _ = _setup(services, clock)
    outcomes = _race(
        services, document, lambda: services.documents.withdraw("r1", document.id)
    )
    assert any(allowed for _, allowed in outcomes), "the race never had a fetch allowed"
    assert any(after for after, _ in outcomes), "no fetch started after the acknowledgement"
    assert not [o for o in outcomes if o == (True, True)]
    history = _names(services, document.id)
    assert "Reused" not in history[history.index("Withdrawn") :]


def test_concurrent_first_requests_register_the_resident_once(services: Services) -> None:
    barrier = threading.Barrier(16)
    ids: list[Any] = []

    def register() -> None:
        barrier.wait()
        ids.append(services.residents.register("newcomer").value.id)

    threads = [threading.Thread(target=register) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1
    assert _names(services, ids[0]) == ["Registered"]


def test_erasure_racing_uploads_leaves_nothing_readable_and_no_orphan_blob(
    services: Services,
) -> None:
    services.residents.register("r1")
    started = threading.Event()
    stop = threading.Event()

    def upload() -> None:
        while not stop.is_set():
            try:
                services.documents.submit(
                    "r1", [b"x" * 200_000], DocumentDetails("diploma", "证书")
                )
            except ResidentErased:
                return
            started.set()

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait(10)
    services.residents.erase("r1")
    stop.set()
    for thread in threads:
        thread.join()
    with pytest.raises(ResidentErased):
        library(services, "r1")
    documents = [e for e in _all_events(services) if isinstance(e, Document.Submitted)]
    assert documents
    content, as_of = services.documents.content, services.store.as_of
    for event in documents:
        assert event.title is ERASED
        with pytest.raises(ResidentErased):
            b"".join(content(as_of(event.originator_id, FAR_FUTURE)))  # type: ignore[arg-type]
    assert {b.key for b in services.blobs.list()} == services.documents.referenced_blob_keys()


def _all_events(services: Services) -> list[Any]:
    return services.events.decode(services.events.select_notifications(1, 100_000))


def test_two_processes_on_one_store_see_each_others_revoke_and_share_a_limited_consent(
    services: Services, backend_settings: Any, clock: MovableClock
) -> None:
    """Two vaults on one store, as two API processes: each caches what it saved, and
    still sees every event the other wrote — a revoke written by one is obeyed by the
    other, and uses count across both."""
    document = services.documents.submit(
        "r1", [b"card"], DocumentDetails(doc_type="id-card", title="居民身份证")
    ).value
    other = open_services(backend_settings, clock=clock)
    processes = [services, other]

    def grant(max_uses: int | None = None) -> Consent:
        return services.consents.grant(
            "r1",
            ConsentRequest(
                department="civil-affairs", doc_types=("id-card",),
                purpose="subsistence-allowance", valid_until=clock.now() + timedelta(days=1),
                max_uses=max_uses,
            ),
        ).consent

    def fetch(n: int) -> None:
        processes[n % 2].fetches.fetch(
            officer="o", department="civil-affairs", resident_id="r1",
            document_id=document.id, purpose="subsistence-allowance",
        )

    try:
        revoked = grant()
        fetch(0)  # each process fetches once, caching the consent and the document
        fetch(1)
        other.consents.revoke("r1", revoked.id)
        with pytest.raises(AccessDenied) as denied:
            fetch(0)
        assert "consent-revoked" in denied.value.reason_codes

        limited = grant(max_uses=20)

        def tally(n: int, tries: int) -> int:
            allowed = 0
            for _ in range(tries):
                try:
                    fetch(n)
                except AccessDenied:
                    continue
                allowed += 1
            return allowed

        # Each caches the consent, one uses it up further, the other must see that.
        assert (tally(1, 1), tally(0, 10), tally(1, 15)) == (1, 10, 9)
        more = grant(max_uses=20)
        allowed: list[int] = []
        lock = threading.Lock()

        def fetcher(n: int) -> None:
            got = tally(n, 8)
            with lock:
                allowed.append(got)

        threads = [threading.Thread(target=fetcher, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(allowed) == 20  # 48 tries from both processes at once, 20 uses
        for process in processes:
            assert process.consents.consent("r1", limited.id).uses == 20
            assert process.consents.consent("r1", more.id).uses == 20
    finally:
        other.close()
