"""The read models: however the follower is interrupted, they equal a rebuild from zero and a
direct fold of the events; pages never skip or repeat while writes go on."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import sql as sql_module
from adapters.settings import Settings
from adapters.wiring import Services, open_services
from projections import runner as runner_module
from projections.queries import Views
from tests.property.test_replay_properties import Program, command, fold_log
from tests.support import MovableClock, another_runner
from vault.access import AccessAttempt
from vault.attestation import AttestationAttempt
from vault.consent import Consent, ConsentStatus
from vault.document import Document
from vault.markers import Erased
from vault.resident import Resident

RESIDENTS = ("r1", "r2", "r3")


class Crash(Exception):
    """The follower dies half-way through a batch."""


def _snapshot(views: Views) -> dict[str, Any]:
    """Everything the read models say, decrypted, for every resident."""
    return {
        resident: {
            "resident": views.resident(resident),
            "library": views.library(resident, limit=10_000, everything=True),
            "consents": views.consents(resident, limit=10_000),
            "access": views.access_log(resident, limit=10_000),
        }
        for resident in RESIDENTS
    }


def _expected_from_the_events(services: Services) -> dict[str, Any]:
    """The same facts, folded straight from the event log."""
    folded = fold_log(services)
    documents = {str(a.id): a for a in folded.values() if isinstance(a, Document)}
    consents = {str(a.id): a for a in folded.values() if isinstance(a, Consent)}
    accesses = {
        str(a.id): a for a in folded.values() if isinstance(a, AccessAttempt | AttestationAttempt)
    }
    residents = {a.resident_id: a for a in folded.values() if isinstance(a, Resident)}
    return {
        "documents": documents, "consents": consents, "accesses": accesses,
        "residents": residents,
    }


_ID = {"library": "document_id", "consents": "consent_id", "access": "access_id"}


def _paged_held(views: Views, department: str, now: datetime) -> list[Any]:
    """consents_held read two at a time, after the last position each page showed."""
    pages: list[Any] = []
    after = None
    while page := views.consents_held(department, now, after=after, limit=2):
        pages += page
        after = page[-1].position
    return pages


def _follow_with_crashes(services: Services, rng: random.Random, crashes: int) -> None:
    """Catch up in small batches, killing the follower now and then: in the middle of a
    batch, or after the views are written but before the position is."""
    for _ in range(crashes):
        crash = _crash_after(rng.randint(0, 12), at_tracking=rng.random() < 0.5)
        with crash, suppress(Crash):
            another_runner(services, batch=rng.randint(1, 7)).catch_up()
    another_runner(services, batch=rng.randint(1, 50)).catch_up()


@contextmanager
def _crash_after(writes: int, *, at_tracking: bool) -> Iterator[None]:
    """Make the follower die once it has sent ``writes`` row changes to the views: in the
    middle of a batch's writes, or as it goes on to record its position."""
    real_many = sql_module.Write.many
    real_set_position = runner_module.set_position
    budget = writes

    def many(self: Any, statement: str, rows: Any) -> None:
        nonlocal budget
        for row in rows:
            if budget == 0 and not at_tracking:
                raise Crash
            budget -= 1
            real_many(self, statement, [row])

    def set_position(*args: Any) -> None:
        if at_tracking and budget <= 0:
            raise Crash
        real_set_position(*args)

    sql_module.Write.many = many  # type: ignore[method-assign]
    runner_module.set_position = set_position
    try:
        yield
    finally:
        sql_module.Write.many = real_many  # type: ignore[method-assign]
        runner_module.set_position = real_set_position


@settings(max_examples=10)
@given(
    program=st.lists(command, min_size=5, max_size=30),
    seed=st.integers(0, 2**16),
    crashes=st.integers(0, 8),
)
def test_interrupted_following_equals_a_rebuild_and_the_events(
    fresh_settings: Callable[[], Settings],
    program: list[tuple[Any, ...]],
    seed: int,
    crashes: int,
) -> None:
    clock = MovableClock()
    services = open_services(fresh_settings(), clock=clock)
    try:
        services.policies.current_version()
        runner = Program(services, clock)
        rng = random.Random(seed)
        # A history that always has fetches, consent uses and reuses, and a consent used
        # up, then the random one.
        fixed = [
            ("submit", "r1", "id-card"),
            ("grant", "r1", 1),
            ("fetch", 0, "civil-affairs"),
            ("grant", "r1", 3),
            ("fetch", 0, "civil-affairs"),
            ("fetch", 0, "civil-affairs"),
            ("fetch", 0, "housing"),
        ]
        for step in [*fixed, *program]:
            runner.run(step)
            if rng.random() < 0.3:
                _follow_with_crashes(services, rng, 1)
        _follow_with_crashes(services, rng, crashes)
        assert services.view_runner.position() == services.events.head()
        followed = _snapshot(services.views)

        # Small batches, so a PostgreSQL rebuild writes several while preparing the next.
        another_runner(services, rebuild_batch=rng.randint(1, 9)).rebuild()
        assert _snapshot(services.views) == followed

        expected = _expected_from_the_events(services)
        _assert_each_row_matches_the_fold(followed, expected)
        _assert_nothing_is_missing(followed, expected)
        _assert_consents_held_match_the_fold(services.views, expected, clock.now())
    finally:
        services.close()


def _assert_each_row_matches_the_fold(followed: dict[str, Any], expected: dict[str, Any]) -> None:
    """Each row the views hold says what the fold says, field by field."""
    for resident in RESIDENTS:
        for entry in followed[resident]["library"]:
            document = expected["documents"][entry.document_id]
            title = None if isinstance(document.title, Erased) else document.title
            assert (entry.status, entry.trust_level, entry.reuse_count, entry.title) == (
                document.status.value,
                document.trust_level.value,
                document.reuse_count,
                title,
            )
        for entry in followed[resident]["consents"]:
            consent = expected["consents"][entry.consent_id]
            assert (entry.uses, entry.revoked_at) == (consent.uses, consent.revoked_at)
        for access in followed[resident]["access"]:
            attempt = expected["accesses"][access.access_id]
            reasons = None if isinstance(attempt.reasons, Erased) else attempt.reasons
            if isinstance(attempt, AttestationAttempt):  # an issue or a verification
                assert (
                    access.action, access.resident_id, access.officer, access.department,
                    access.document_id, access.doc_type, access.purpose, access.consent_id,
                    access.allowed, access.reason_codes, access.reasons,
                    access.policy_version, access.rule, access.request_id, access.at,
                ) == (
                    attempt.act, attempt.resident_id, attempt.officer, attempt.department,
                    str(attempt.document_id), attempt.doc_type, None, None, attempt.allowed,
                    attempt.reason_codes, reasons, attempt.policy_version, attempt.rule,
                    attempt.request_id, attempt.at,
                )
                continue
            assert access.action == "fetch"
            assert (
                access.resident_id, access.officer, access.department, access.document_id,
                access.doc_type, access.purpose, access.consent_id, access.allowed,
                access.reason_codes, access.reasons, access.policy_version, access.rule,
                access.request_id, access.at,
            ) == (
                attempt.resident_id, attempt.officer, attempt.department,
                str(attempt.document_id), attempt.doc_type, attempt.purpose,
                str(attempt.consent_id) if attempt.consent_id else None, attempt.allowed,
                attempt.reason_codes, reasons, attempt.policy_version, attempt.rule,
                attempt.request_id, attempt.at,
            )


def _assert_nothing_is_missing(followed: dict[str, Any], expected: dict[str, Any]) -> None:
    """Every resident has exactly their own documents, consents and access attempts, and
    their grade and erasure, as folded."""
    for resident in RESIDENTS:
        views_of = followed[resident]
        for kind, key in (
            ("library", "documents"), ("consents", "consents"), ("access", "accesses")
        ):
            ids = {getattr(e, _ID[kind]) for e in views_of[kind]}
            assert ids == {
                i for i, a in expected[key].items() if a.resident_id == resident
            }, kind
        folded = expected["residents"].get(resident)
        entry = views_of["resident"]
        if folded is None:
            assert entry is None
        else:
            assert entry is not None
            assert entry.erased == folded.is_erased
            assert entry.grade == (None if folded.is_erased else folded.grade)


def _assert_consents_held_match_the_fold(
    views: Views, expected: dict[str, Any], today: datetime
) -> None:
    """What a department holds at any moment (before, within and after the consents'
    terms): exactly the consents the fold finds active then, also read page by page."""
    for days in (-1, 0, 15, 31):
        now = today + timedelta(days=days)
        for department in ("civil-affairs", "housing"):
            held = views.consents_held(department, now)
            assert {c.consent_id for c in held} == {
                i for i, c in expected["consents"].items()
                if c.department == department and c.status(now) == ConsentStatus.ACTIVE
            }
            assert _paged_held(views, department, now) == held


def test_pages_never_skip_or_repeat_while_writes_go_on(
    fresh_settings: Callable[[], Settings],
) -> None:
    services = open_services(fresh_settings(), clock=MovableClock())
    views = services.views
    from vault.inputs import DocumentDetails

    try:
        first = [
            services.documents.submit(
                "r1", [f"doc {n}".encode()], DocumentDetails("diploma", f"证书 {n}")
            ).value
            for n in range(25)
        ]
        services.view_runner.catch_up()
        stop = threading.Event()

        def keep_writing() -> None:
            n = 0
            while not stop.is_set():
                services.documents.submit("r1", [b"later"], DocumentDetails("diploma", f"后来 {n}"))
                services.view_runner.catch_up()
                n += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            seen: list[str] = []
            before: int | None = None
            start = None
            while True:
                page = views.library("r1", limit=4, before=before)
                if start is None:
                    start = page[0].position if page else 0
                seen += [e.document_id for e in page]
                if len(page) < 4:
                    break
                before = page[-1].position
        finally:
            stop.set()
            writer.join()
        assert len(seen) == len(set(seen)), "a page repeated an item"
        assert {str(d.id) for d in first} <= set(seen), "a page skipped an item"
    finally:
        services.close()
