"""Departments fetching residents' documents: every attempt judged on the records and
recorded, allowed ones charged to their consent, all of it group-committed."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from copy import copy
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar
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
R = TypeVar("R")

READING_THREADS = 4
"""Threads reading the bytes of allowed fetches (:meth:`Fetches.submit_reading`): the key
unwrap, the blob read and the decryption let go of the interpreter, so a few keep two
cores busy, and fewer compete for it with the thread that records the fetches."""

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
    read: Callable[[Document, Iterator[bytes]], Any] | None = None
    """Read the bytes of an allowed fetch with this while it is committed
    (:meth:`Fetches.submit_reading`)."""


@dataclass(frozen=True)
class RecordedFetch:
    """An allowed fetch whose access event is committed: the document, not yet its bytes."""

    access: AccessAttempt
    document: Document
    position: int
    """Where the fetch's last event landed in the log (for read-your-writes)."""
    reading: Future[tuple[Iterator[bytes], Any]] | None = field(default=None, compare=False)
    """The read of its bytes begun before the commit, if one was asked for."""


@dataclass(frozen=True)
class Read(Generic[R]):
    """An allowed fetch, committed, and what was read of its bytes."""

    recorded: RecordedFetch
    value: R


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
        self._readers = ThreadPoolExecutor(READING_THREADS, thread_name_prefix="vault-read")

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
        read: Callable[[Document, Iterator[bytes]], Any] | None = None,
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
            read=read,
        )
        return self._batcher.submit(request)

    def submit_reading(
        self, read: Callable[[Document, Iterator[bytes]], R], **request: Any
    ) -> Future[Read[R]]:
        """:meth:`submit` (``request`` are its arguments), and read the document's bytes with
        ``read`` — on one of this service's reading threads, as soon as the fetch is judged
        allowed, while its events are committed — so that the future ends with both.

        Nothing read is handed over before the fetch's events are committed, so the bytes
        still go out only after them. If the bytes cannot be read, the fetch is noted
        undelivered and charged nothing (as :meth:`open`) and the future ends with the
        error; if the commit fails, what was read is dropped."""
        committed = self.submit(**request, read=read)
        done: Future[Read[R]] = Future()

        def deliver(reading: Future[tuple[Iterator[bytes], Any]], recorded: RecordedFetch) -> None:
            try:
                content, value = reading.result()
            except VaultError as e:
                self._readers.submit(self._undelivered, recorded, e, done)
                return
            except BaseException as e:
                _settle(done, exception=e)
                return
            if not _settle(done, result=Read(recorded, value)):
                _close(content)  # nobody waits for it any more

        def committed_then(future: Future[RecordedFetch]) -> None:
            try:
                recorded = future.result()
            except BaseException as e:
                _settle(done, exception=e)
                return
            reading = recorded.reading
            if reading is None:  # every allowed fetch asked to be read is being read
                _settle(done, exception=RuntimeError("an allowed fetch was not read"))
                return
            reading.add_done_callback(partial(deliver, recorded=recorded))

        committed.add_done_callback(committed_then)
        return done

    def _read(
        self, document: Document, read: Callable[[Document, Iterator[bytes]], Any]
    ) -> tuple[Iterator[bytes], Any]:
        content = self._documents.content(document)
        try:
            return content, read(document, content)
        except BaseException:
            _close(content)
            raise

    def _undelivered(
        self, recorded: RecordedFetch, error: VaultError, done: Future[Read[Any]]
    ) -> None:
        try:
            reached = self.undeliver(recorded, error.code)
            error.position = max(recorded.position, reached or 0)
        except BaseException as e:
            _settle(done, exception=e)
            return
        _settle(done, exception=error)

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
        """Serve the fetches already asked for, then stop the serving and reading threads."""
        self._batcher.close()
        self._readers.shutdown(wait=True)

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
        loaded.load(requests)
        readings: list[Future[tuple[Iterator[bytes], Any]]] = []
        try:
            return self._judged_and_saved(requests, loaded, readings)
        except BaseException:
            self._warm.drop(*loaded.ids())
            for reading in readings:  # judged in an attempt that did not end saved
                reading.add_done_callback(_discard)
            raise

    def _judged_and_saved(
        self,
        requests: Sequence[FetchRequest],
        loaded: _Loaded,
        readings: list[Future[tuple[Iterator[bytes], Any]]],
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
        judged: list[tuple[
            FetchRequest, AccessAttempt, Judgement, Document | None, bool, int,
            Future[tuple[Iterator[bytes], Any]] | None,
        ]] = []
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
            reading = None
            if r.read is not None and document is not None and _delivers(access, document):
                # Read while the events are committed; handed over only after.
                reading = self._readers.submit(self._read, copy(document), r.read)
                readings.append(reading)
            judged.append(
                (r, access, judgement, document, bool(consents), len(events), reading)
            )
        # The events in their order; then the aggregates, their events collected already,
        # so that the application knows them as saved (it caches them itself only when
        # it does not fast-forward; here ``remember`` below does).
        positions = self._store.record(*events, *aggregates.values())
        # Committed: nothing after this may fail the batch (it would be served again).
        outcomes: list[RecordedFetch | Exception] = []
        for r, access, judgement, document, consented, events_so_far, reading in judged:
            position = positions[events_so_far - 1]
            if access.allowed and document is not None:
                if _delivers(access, document):
                    # A copy: the warm document goes on being changed by later batches.
                    outcomes.append(RecordedFetch(access, copy(document), position, reading))
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


def _delivers(access: AccessAttempt, document: Document | None) -> bool:
    """Whether a judged fetch's bytes are to go out (allowed, and not noted undelivered)."""
    return access.allowed and document is not None and access.undelivered is None


def _settle(
    future: Future[Any], *, result: Any = None, exception: BaseException | None = None
) -> bool:
    """End a future unless it has ended (cancelled by a caller that went away); whether it
    was this call that ended it."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        return False
    return True


def _close(content: Iterator[bytes]) -> None:
    close = getattr(content, "close", None)
    if close is not None:
        close()


def _discard(reading: Future[tuple[Iterator[bytes], Any]]) -> None:
    """Close what a reading opened, for a fetch whose attempt did not end saved."""
    if not reading.cancelled() and reading.exception() is None:
        _close(reading.result()[0])


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

    def load(self, requests: Sequence[FetchRequest]) -> None:
        """Have the warm cache hold what the requests are judged on, read together: the
        residents and the documents, then the consents the residents name for them (two
        round trips for a cold batch, instead of one an aggregate)."""
        self._warm.load(
            i for r in requests for i in (resident_aggregate_id(r.resident_id), r.document_id)
        )
        self._warm.load(
            c for r in requests for c in self._consent_ids(r.resident_id, r.department,
                                                           r.purpose, r.consent_id)
        )

    def _consent_ids(
        self, resident_id: str, department: str, purpose: str, only: UUID | None
    ) -> list[UUID]:
        resident = self.resident(resident_id)
        if resident is None or resident.is_erased:
            return []
        return [c for c in resident.consents_for(department, purpose)
                if only is None or c == only]

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
        consents = [self.consent(c) for c in
                    self._consent_ids(resident_id, department, purpose, only)]
        return resident, self.document(resident_id, document_id), consents
