"""Departments fetching residents' documents: every attempt judged on the records and
recorded, allowed ones charged to their consent, all of it group-committed."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from copy import copy
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from vault.access import AccessAttempt
from vault.batching import Batcher
from vault.consent import Consent
from vault.document import Document
from vault.errors import (
    AccessDenied,
    AccessNotFound,
    ConsentNotFound,
    DocumentNotFound,
    RangeNotSatisfiable,
    VaultError,
)
from vault.ids import check_identifier, check_resident_id, parse_uuid, resident_aggregate_id
from vault.inputs import ByteRange, check_known, check_text
from vault.judgement import Judgement, record_fetch
from vault.ports import Clock
from vault.resident import Resident
from vault.services.documents import Documents
from vault.services.policies import Policies
from vault.store import Store, Warm

log = logging.getLogger("civicvault.fetches")

FETCH_BATCH = 64
"""At most this many fetches are judged and committed together (see :meth:`Fetches.submit`)."""


WARM_AGGREGATES = 30_000
"""The batch thread keeps up to this many residents, documents and consents between batches
(see :class:`vault.store.Warm`)."""


@dataclass(frozen=True)
class FetchRequest:
    """One department's request for one document, checked."""

    officer: str
    department: str
    resident_id: str
    document_id: UUID
    purpose: str
    request_id: str
    byte_range: ByteRange | None = None
    consent_id: UUID | None = None
    """Judge under this consent only (an application's reads are under its own)."""


@dataclass(frozen=True)
class RecordedFetch:
    """An allowed fetch whose access event is committed: the document, not yet its bytes."""

    access: AccessAttempt
    document: Document
    position: int
    """Where the fetch's last event landed in the log (for read-your-writes)."""


@dataclass(frozen=True)
class Fetched:
    """An allowed fetch: its recorded access event, the document and its bytes."""

    access: AccessAttempt
    document: Document
    content: Iterator[bytes]
    position: int


class Fetches:
    def __init__(
        self,
        store: Store,
        policies: Policies,
        documents: Documents,
        clock: Clock,
        *,
        warm_aggregates: int = WARM_AGGREGATES,
    ) -> None:
        self._store = store
        self._policies = policies
        self._documents = documents
        self._clock = clock
        # The batch thread's own: the residents, documents and consents it judges on, kept
        # between batches and brought up to date through the log before each attempt.
        # Dropped with their resident, and all of them whenever the thread goes idle.
        self._warm = Warm(store, warm_aggregates, related=_held_with)
        self._batcher: Batcher[FetchRequest, RecordedFetch] = Batcher(
            self._serve, name="vault-fetches", max_batch=FETCH_BATCH,
            on_idle=self._warm.clear,
        )

    def fetch(
        self,
        *,
        officer: str,
        department: str,
        resident_id: str,
        document_id: UUID | str,
        purpose: str,
        request_id: str | None = None,
    ) -> Fetched:
        """Fetch a resident's document for a purpose, waiting for the access event to be
        committed (see :meth:`submit`), then open its bytes."""
        recorded = self.submit(
            officer=officer,
            department=department,
            resident_id=resident_id,
            document_id=document_id,
            purpose=purpose,
            request_id=request_id,
        ).result()
        return Fetched(
            recorded.access, recorded.document, self.open(recorded), recorded.position
        )

    def open(self, recorded: RecordedFetch) -> Iterator[bytes]:
        """The bytes of a recorded fetch, decrypted as they stream. If they cannot be opened
        — the blob store unreachable, the blob missing or altered, the key shredded — none
        went out: the fetch is noted undelivered and charged nothing
        (:meth:`undeliver`), and the error is raised."""
        try:
            content = self._documents.content(recorded.document)
            first = next(content, b"")
        except VaultError as e:
            reached = self.undeliver(recorded, e.code)
            e.position = max(recorded.position, reached or 0)
            raise
        return itertools.chain((first,), content)

    def submit(
        self,
        *,
        officer: str,
        department: str,
        resident_id: str,
        document_id: UUID | str,
        purpose: str,
        request_id: str | None = None,
        byte_range: ByteRange | None = None,
        consent_id: UUID | None = None,
    ) -> Future[RecordedFetch]:
        """Ask to fetch a resident's document for a purpose; the future ends with the
        committed fetch, or :class:`AccessDenied` with the reasons the officer is told, or
        :class:`RangeNotSatisfiable` when it is allowed but the document has none of the
        bytes of ``byte_range`` (recorded so, nothing charged). With ``consent_id``, only
        that consent of the resident's is judged on (an application's reads).

        Every attempt, allowed or denied, records exactly one access event, and it is
        committed before the future ends. An allowed fetch consumes one use of the consent
        on the consent itself and marks the document reused, in the same transaction, so a
        revoke or a withdrawal that was acknowledged first makes it re-judge and be denied.

        Bad input raises here, before anything is queued. Fetches are served by one thread
        per process, in the order asked, up to :data:`FETCH_BATCH` in one transaction (a
        group commit): concurrent fetches of one document under one consent no longer
        conflict with each other, and share their loads and their commit. Each is judged on
        the state the fetches before it left, and its events follow theirs in the log.
        """
        check_text("officer", officer, 128)
        check_known("department", "department", department)
        check_resident_id(resident_id)
        check_known("purpose", "service", purpose)
        request = FetchRequest(
            officer=officer,
            department=department,
            resident_id=resident_id,
            document_id=parse_uuid("document_id", document_id),
            purpose=purpose,
            request_id=check_text("request_id", request_id or uuid4().hex, 128),
            byte_range=byte_range,
            consent_id=consent_id,
        )
        return self._batcher.submit(request)

    def undeliver(self, fetched: RecordedFetch, reason: str) -> int | None:
        """An allowed fetch whose bytes could not go out after all (the blob store could not
        be reached, say): note why on its access event and give back its consent's use
        and its document's reuse, in one transaction. Returns the log position reached."""
        check_identifier("reason", reason)

        def undeliver() -> int | None:
            access = self._store.get(AccessAttempt, fetched.access.id, AccessNotFound)
            if access.undelivered is not None:
                return None
            now = self._clock.now()
            access.undeliver(reason, now)
            changed: list[Any] = [access]
            if access.consent_id is not None:
                consent = self._store.get(Consent, access.consent_id, ConsentNotFound)
                consent.return_use(access.id, now)
                changed.append(consent)
            document = self._store.get(Document, access.document_id, DocumentNotFound)
            document.return_reuse(access.id, now)
            changed.append(document)
            return self._store.save(*changed)

        return self._store.retrying(undeliver)

    def close(self) -> None:
        """Serve the fetches already asked for, then stop the serving thread."""
        self._batcher.close()

    def _serve(self, requests: Sequence[FetchRequest]) -> list[RecordedFetch | Exception]:
        """Judge and record a batch in one transaction. If that fails other than by a
        conflict (a resident erased under it, say), each is served alone, so that one
        request's failure stays its own."""
        if len(requests) > 1:
            try:
                return self._store.retrying(lambda: self._record(requests))
            except Exception:
                log.info("a batch of %d fetches failed; serving them one by one", len(requests))
        outcomes: list[RecordedFetch | Exception] = []
        for request in requests:
            try:
                outcomes.extend(self._store.retrying(partial(self._record, [request])))
            except Exception as e:
                outcomes.append(e)
        return outcomes

    def _record(self, requests: Sequence[FetchRequest]) -> list[RecordedFetch | Exception]:
        """One attempt: load, judge each request in order on the state the ones before it
        left, and save every event in one transaction, each request's events together and
        its access event first (see :func:`record_fetch`).

        The state comes from the batch thread's warm aggregates, refreshed first. What this
        attempt loads it may change; unless the attempt ends saved, all of it is dropped."""
        self._warm.refresh()
        loaded = _Loaded(self._warm)
        try:
            return self._judged_and_saved(requests, loaded)
        except BaseException:
            self._warm.drop(*loaded.ids())
            raise

    def _judged_and_saved(
        self, requests: Sequence[FetchRequest], loaded: _Loaded
    ) -> list[RecordedFetch | Exception]:
        point = self._policies.decision_point()
        states = [
            (r, *loaded.state_of(r.resident_id, r.document_id, r.department, r.purpose,
                                 r.consent_id))
            for r in requests
        ]
        now = self._clock.now()  # after loading: later than anything loaded
        events: list[Any] = []
        aggregates: dict[UUID, Any] = {}
        judged: list[tuple[FetchRequest, AccessAttempt, Judgement, Document | None, bool, int]] = []
        for r, resident, document, consents in states:
            access, judgement, changed = record_fetch(
                resident=resident,
                resident_id=r.resident_id,
                document=document,
                document_id=r.document_id,
                consents=consents,
                officer=r.officer,
                department=r.department,
                purpose=r.purpose,
                point=point,
                request_id=r.request_id,
                now=now,
                byte_range=r.byte_range,
            )
            for aggregate in changed:
                events.extend(aggregate.collect_events())
                aggregates[aggregate.id] = aggregate
            judged.append((r, access, judgement, document, bool(consents), len(events)))
        # The events in their order; then the aggregates, their events collected already,
        # so that the application knows them as saved (it caches them itself only when
        # it does not fast-forward; here ``remember`` below does).
        positions = self._store.record(*events, *aggregates.values())
        # Committed: nothing after this may fail the batch (it would be served again).
        outcomes: list[RecordedFetch | Exception] = []
        for r, access, judgement, document, consented, events_so_far in judged:
            position = positions[events_so_far - 1]
            if access.allowed and document is not None:
                if access.undelivered is None:
                    # A copy: the warm document goes on being changed by later batches.
                    outcomes.append(RecordedFetch(access, copy(document), position))
                else:
                    outcomes.append(RangeNotSatisfiable(document.size, access.id, position))
                continue
            told = judgement.told_to_officer(
                consented=consented, department=r.department, purpose=r.purpose
            )
            outcomes.append(
                AccessDenied(
                    "; ".join(reason.text for reason in told),
                    tuple(reason.code for reason in told),
                    tuple(reason.text for reason in told),
                    access.id,
                    position,
                )
            )
        return outcomes


def _held_with(aggregate: object) -> tuple[UUID, ...]:
    """What the warm cache drops with an aggregate: a resident's documents and consents."""
    if isinstance(aggregate, Resident):
        return (*aggregate.document_ids, *aggregate.consent_ids)
    return ()


class _Loaded:
    """The aggregates one attempt of a batch has taken, each taken once, so that every
    request of the batch sees (and changes) the same copy."""

    def __init__(self, warm: Warm) -> None:
        self._warm = warm
        self._loaded: dict[UUID, object] = {}

    def _get(self, aggregate_id: UUID) -> object:
        if aggregate_id not in self._loaded:
            self._loaded[aggregate_id] = self._warm.get(aggregate_id)
        return self._loaded[aggregate_id]

    def ids(self) -> list[UUID]:
        """Every aggregate this attempt has taken."""
        return list(self._loaded)

    def resident(self, resident_id: str) -> Resident | None:
        resident = self._get(resident_aggregate_id(resident_id))
        return resident if isinstance(resident, Resident) else None

    def document(self, resident_id: str, document_id: UUID) -> Document | None:
        document = self._get(document_id)
        if isinstance(document, Document) and document.resident_id == resident_id:
            return document
        return None

    def consent(self, consent_id: UUID) -> Consent:
        consent = self._get(consent_id)
        if not isinstance(consent, Consent):
            raise ConsentNotFound(f"consent {consent_id} not found")
        return consent

    def state_of(
        self, resident_id: str, document_id: UUID, department: str, purpose: str,
        only: UUID | None = None,
    ) -> tuple[Resident | None, Document | None, list[Consent]]:
        """What a fetch is judged on: the resident, the document (if it is theirs) and their
        consents to the department for the purpose (none once erased), or only the consent
        ``only`` among them."""
        resident = self.resident(resident_id)
        consents = (
            [self.consent(c) for c in resident.consents_for(department, purpose)
             if only is None or c == only]
            if resident is not None and not resident.is_erased
            else []
        )
        return resident, self.document(resident_id, document_id), consents
