"""The vault's application service: the commands and queries of residents and departments."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import takewhile
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Mapper
from eventsourcing.utils import get_topic

from keys.envelope import Source, new_document_key, open_document, seal_document
from keys.errors import ResidentKeyShredded, TamperedDocument
from keys.receipts import ConsentTerms
from vault.consent import Consent
from vault.document import Document
from vault.errors import (
    BlobMissing,
    ConsentNotFound,
    ContentCorrupted,
    Contention,
    DocumentNotFound,
    InvalidInput,
    ResidentErased,
    ResidentNotFound,
)
from vault.ids import check_identifier, check_resident_id, parse_uuid, resident_aggregate_id
from vault.inputs import (
    ConsentRequest,
    DocumentDetails,
    GradeUpdate,
    check_grade_updates,
    check_text,
)
from vault.personal import PersonalDataMapper
from vault.ports import BlobNotFound, BlobStore, Clock, DataKeys, SystemClock
from vault.resident import Resident

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)

DEFAULT_MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
_GRADE_BATCH = 500


class ReceiptSigner(Protocol):
    def __call__(self, terms: ConsentTerms) -> str: ...


@dataclass(frozen=True)
class GrantedConsent:
    consent: Consent
    receipt: str


@dataclass(frozen=True)
class GradeOutcome:
    applied: int
    stale: int
    erased: int


@dataclass(frozen=True)
class GarbageReport:
    examined: int
    deleted: int
    referenced: int
    too_young: int


class Vault(Application[UUID]):
    """Residents hand each document over once; departments reuse it only with consent."""

    name = "Vault"

    def __init__(
        self,
        *,
        factory: InfrastructureFactory[Any],
        keys: DataKeys,
        blobs: BlobStore,
        sign_receipt: ReceiptSigner,
        clock: Clock | None = None,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        max_attempts: int = 64,
    ) -> None:
        self._factory = factory
        self.keys = keys
        self.blobs = blobs
        self.sign_receipt = sign_receipt
        self.clock = clock or SystemClock()
        self.max_document_bytes = max_document_bytes
        self.max_attempts = max_attempts
        super().__init__(env=factory.env.copy())

    def construct_factory(self, env: Any) -> InfrastructureFactory[Any]:
        return self._factory

    def construct_mapper(self) -> Mapper[UUID]:
        return PersonalDataMapper(
            transcoder=self.construct_transcoder(),
            keys=self.keys,
            compressor=self.factory.compressor(),
            cipher=self.factory.cipher(),
        )

    # Residents

    def register_resident(self, resident_id: str) -> Resident:
        """Register a resident on first use; registering again returns the same resident."""
        check_resident_id(resident_id)
        try:
            return self.resident(resident_id)
        except ResidentNotFound:
            pass
        self.keys.create(resident_id)
        resident = Resident(resident_id=resident_id)
        try:
            self.save(resident)
        except IntegrityError:
            return self.resident(resident_id)
        return resident

    def resident(self, resident_id: str) -> Resident:
        check_resident_id(resident_id)
        try:
            resident: Resident = self.repository.get(resident_aggregate_id(resident_id))
        except AggregateNotFoundError:
            raise ResidentNotFound(f"resident {resident_id} is not registered") from None
        return resident

    def record_grades(self, updates: Sequence[GradeUpdate]) -> GradeOutcome:
        """Apply credit grades in few transactions; older or equal sequences are stale."""
        check_grade_updates(updates)
        by_resident: dict[str, list[GradeUpdate]] = {}
        for update in updates:
            by_resident.setdefault(update.resident_id, []).append(update)
        applied = stale = erased = 0
        residents = list(by_resident)
        for start in range(0, len(residents), _GRADE_BATCH):
            batch = {rid: by_resident[rid] for rid in residents[start : start + _GRADE_BATCH]}
            a, s, e = self._retrying(partial(self._apply_grades, batch))
            applied, stale, erased = applied + a, stale + s, erased + e
        return GradeOutcome(applied=applied, stale=stale, erased=erased)

    def _apply_grades(self, batch: dict[str, list[GradeUpdate]]) -> tuple[int, int, int]:
        applied = stale = erased = 0
        changed: list[Resident] = []
        for resident_id, rows in batch.items():
            try:
                resident = self.resident(resident_id)
            except ResidentNotFound:
                self.keys.create(resident_id)
                resident = Resident(resident_id=resident_id)
            if resident.is_erased:
                erased += len(rows)
                continue
            for row in rows:  # in arrival order: a later row with a lower sequence is stale
                if resident.record_grade(row.grade, row.sequence, row.effective_at):
                    applied += 1
                else:
                    stale += 1
            if resident.pending_events:
                changed.append(resident)
        self.save(*changed)
        return applied, stale, erased

    def erase_resident(self, resident_id: str) -> None:
        """Erase a resident: record it, then shred their key. Safe to repeat after a crash."""

        def mark_erased() -> None:
            resident = self.resident(resident_id)
            if not resident.is_erased:
                resident.erase(self.clock.now())
                self.save(resident)

        self._retrying(mark_erased)
        self.keys.shred(resident_id)

    # Documents

    def submit_document(
        self,
        resident_id: str,
        content: Source,
        details: DocumentDetails,
        *,
        replaces: UUID | str | None = None,
    ) -> Document:
        """A resident uploads a document (trust level C), optionally replacing an older one."""
        self._active_resident(self.register_resident(resident_id))
        return self._file_document(resident_id, content, details, replaces, Document.submit)

    def issue_document(
        self,
        department: str,
        officer: str,
        resident_id: str,
        content: Source,
        details: DocumentDetails,
        *,
        replaces: UUID | str | None = None,
    ) -> Document:
        """A department issues a document into a resident's library (trust level A)."""
        check_identifier("department", department)
        check_text("officer", officer, 128)
        self._active_resident(self.register_resident(resident_id))

        def issue(document_id: UUID, **fields: Any) -> Document:
            return Document.issue(document_id, department=department, officer=officer, **fields)

        return self._file_document(resident_id, content, details, replaces, issue)

    def verify_document(self, department: str, officer: str, document_id: UUID | str) -> Document:
        """An officer checked the document against its original: trust level B."""
        check_identifier("department", department)
        check_text("officer", officer, 128)

        def verify() -> Document:
            document = self._document(document_id)
            self._active_resident(self.resident(document.resident_id))
            document.verify(department, officer, self.clock.now())
            self.save(document)
            return document

        return self._retrying(verify)

    def withdraw_document(self, resident_id: str, document_id: UUID | str) -> Document:
        """The resident withdraws a document; no department can fetch it again."""

        def withdraw() -> Document:
            document = self.document(resident_id, document_id)
            document.withdraw(self.clock.now())
            self.save(document)
            return document

        return self._retrying(withdraw)

    def revoke_document(self, department: str, document_id: UUID | str, reason: str) -> Document:
        """The issuing department revokes a document it issued."""
        check_identifier("department", department)
        check_text("reason", reason, 500)

        def revoke() -> Document:
            document = self._document(document_id)
            document.revoke(department, reason, self.clock.now())
            self.save(document)
            return document

        return self._retrying(revoke)

    def document(self, resident_id: str, document_id: UUID | str) -> Document:
        """One of the resident's own documents; another resident's is 'not found'."""
        document = self._document(document_id)
        if document.resident_id != resident_id:
            raise DocumentNotFound(f"document {document_id} not found")
        self._active_resident(self.resident(resident_id))
        return document

    def library(self, resident_id: str) -> list[Document]:
        """The resident's current documents, newest first."""
        resident = self._active_resident(self.resident(resident_id))
        documents = [self._document(d) for d in resident.document_ids]
        current = [d for d in documents if d.is_active]
        return sorted(current, key=lambda d: d.created_on, reverse=True)

    def read_document(self, resident_id: str, document_id: UUID | str) -> Iterator[bytes]:
        """The bytes of one of the resident's own documents, decrypted as they stream."""
        return self.document_content(self.document(resident_id, document_id))

    def document_content(self, document: Document) -> Iterator[bytes]:
        """Decrypt a document's bytes chunk by chunk; fails loudly if the blob was altered."""
        try:
            key = self.keys.unwrap_document_key(
                document.resident_id, str(document.id), base64.b64decode(document.sealed_key)
            )
        except ResidentKeyShredded:
            raise ResidentErased(f"resident {document.resident_id} was erased") from None
        try:
            sealed = self.blobs.get(document.blob_key)
        except BlobNotFound:
            raise BlobMissing(f"blob of document {document.id} is missing") from None
        return _decrypting(key, sealed, document)

    # Consents

    def grant_consent(self, resident_id: str, request: ConsentRequest) -> GrantedConsent:
        """The resident lets one department fetch some document types for one purpose."""
        self._active_resident(self.register_resident(resident_id))
        now = self.clock.now()
        valid_from = request.valid_from or now
        if request.valid_until <= now:
            raise InvalidInput("valid_until", "must be in the future")

        def grant() -> Consent:
            resident = self._active_resident(self.resident(resident_id))
            consent = Consent(
                resident_id=resident_id,
                department=request.department,
                doc_types=list(request.doc_types),
                purpose=request.purpose,
                valid_from=valid_from,
                valid_until=request.valid_until,
                max_uses=request.max_uses,
                granted_at=now,
            )
            resident.file_consent(consent.id)
            self.save(resident, consent)
            return consent

        consent = self._retrying(grant)
        receipt = self.sign_receipt(
            ConsentTerms(
                consent_id=str(consent.id),
                resident_id=resident_id,
                department=consent.department,
                doc_types=consent.doc_types,
                purpose=consent.purpose,
                valid_from=consent.valid_from,
                valid_until=consent.valid_until,
                max_uses=consent.max_uses,
                granted_at=consent.granted_at,
            )
        )
        return GrantedConsent(consent, receipt)

    def revoke_consent(self, resident_id: str, consent_id: UUID | str) -> Consent:
        """Once this returns, no fetch under the consent can succeed."""

        def revoke() -> Consent:
            consent = self.consent(resident_id, consent_id)
            consent.revoke(self.clock.now())
            self.save(consent)
            return consent

        return self._retrying(revoke)

    def use_consent(
        self,
        consent_id: UUID | str,
        *,
        department: str,
        doc_type: str,
        purpose: str,
        document_id: UUID | str,
        request_id: str,
    ) -> Consent:
        """Consume one use atomically: concurrent uses serialise on the consent's version."""
        document_uuid = parse_uuid("document_id", document_id)

        def use() -> Consent:
            consent = self._consent(consent_id)
            self._active_resident(self.resident(consent.resident_id))
            consent.use(
                department=department,
                doc_type=doc_type,
                purpose=purpose,
                document_id=document_uuid,
                request_id=request_id,
                now=self.clock.now(),
            )
            self.save(consent)
            return consent

        return self._retrying(use)

    def consent(self, resident_id: str, consent_id: UUID | str) -> Consent:
        """One of the resident's own consents; another resident's is 'not found'."""
        consent = self._consent(consent_id)
        if consent.resident_id != resident_id:
            raise ConsentNotFound(f"consent {consent_id} not found")
        self._active_resident(self.resident(resident_id))
        return consent

    def consents(self, resident_id: str) -> list[Consent]:
        """Every consent the resident has given, newest first."""
        resident = self._active_resident(self.resident(resident_id))
        return [self._consent(c) for c in reversed(resident.consent_ids)]

    # History

    def as_of(self, aggregate_id: UUID | str, at: datetime) -> Aggregate | None:
        """Any aggregate as it stood at ``at`` (None if it did not exist yet)."""
        events = cast(
            "Iterable[Aggregate.Event]", self.events.get(parse_uuid("id", aggregate_id))
        )
        state: Aggregate | None = None
        for domain_event in takewhile(lambda e: e.timestamp <= at, events):
            state = domain_event.mutate(state)
        return state

    # Housekeeping

    def referenced_blob_keys(self) -> set[str]:
        """Every blob key any document event refers to."""
        topics = [get_topic(Document.Submitted), get_topic(Document.Issued)]
        keys: set[str] = set()
        start = 1
        while page := self.recorder.select_notifications(start, 1000, topics=topics):
            for notification in page:
                keys.add(self.mapper.to_domain_event(notification).blob_key)  # type: ignore[attr-defined]
            start = page[-1].id + 1
        return keys

    def collect_garbage(
        self, grace: timedelta, progress: Callable[[int], None] | None = None
    ) -> GarbageReport:
        """Delete blobs that no event refers to and that are older than ``grace``.

        Uploads still in flight have a blob but no event yet; they are younger than ``grace``.
        """
        cutoff = self.clock.now() - grace
        candidates = list(self.blobs.list())
        referenced = self.referenced_blob_keys()
        deleted = kept_referenced = too_young = 0
        for count, blob in enumerate(candidates, 1):
            if blob.key in referenced:
                kept_referenced += 1
            elif blob.modified_at > cutoff:
                too_young += 1
            else:
                self.blobs.delete(blob.key)
                deleted += 1
            if progress:
                progress(count)
        return GarbageReport(len(candidates), deleted, kept_referenced, too_young)

    # Internals

    def _file_document(
        self,
        resident_id: str,
        content: Source,
        details: DocumentDetails,
        replaces: UUID | str | None,
        create: Callable[..., Document],
    ) -> Document:
        replaced_id = parse_uuid("replaces", replaces) if replaces is not None else None
        if replaced_id is not None:
            self._check_replaceable(resident_id, replaced_id, details.doc_type)
        document_id = uuid4()
        stored = self._seal_and_store(resident_id, document_id, content)

        def file() -> Document:
            resident = self._active_resident(self.resident(resident_id))
            document = create(
                document_id,
                resident_id=resident_id,
                doc_type=details.doc_type,
                title=details.title,
                filename=details.filename,
                content_type=details.content_type,
                expires_at=details.expires_at,
                replaces=replaced_id,
                **stored,
            )
            resident.file_document(document.id)
            changed: list[Aggregate] = [resident, document]
            if replaced_id is not None:
                old = self._check_replaceable(resident_id, replaced_id, details.doc_type)
                old.supersede(document.id, self.clock.now())
                changed.append(old)
            self.save(*changed)
            return document

        try:
            return self._retrying(file)
        except BaseException:
            self._discard_unfiled_blob(document_id, stored["blob_key"])
            raise

    def _discard_unfiled_blob(self, document_id: UUID, blob_key: str) -> None:
        """Delete the blob of a document whose event was not written.

        A failure can come after a commit (a connection lost on the way back), so
        the blob goes only once the store confirms there is no event; if that
        cannot be confirmed, the blob stays for ``collect_garbage`` to judge.
        """
        with contextlib.suppress(Exception):  # the original error is the one to report
            if not self.recorder.select_events(document_id, limit=1):
                self.blobs.delete(blob_key)

    def _check_replaceable(self, resident_id: str, document_id: UUID, doc_type: str) -> Document:
        old = self.document(resident_id, document_id)
        old.check_available()
        if old.doc_type != doc_type:
            raise InvalidInput("replaces", f"is a {old.doc_type}, not a {doc_type}")
        return old

    def _seal_and_store(
        self, resident_id: str, document_id: UUID, content: Source
    ) -> dict[str, Any]:
        """Blob first: seal the bytes under a fresh document key and store them durably."""
        document_key = new_document_key()
        digest = hashlib.sha256()
        size = 0
        limit = self.max_document_bytes

        def measured() -> Iterator[bytes]:
            nonlocal size
            for piece in _pieces(content):
                size += len(piece)
                if size > limit:
                    raise InvalidInput("file", f"is larger than the {limit}-byte limit")
                digest.update(piece)
                yield piece

        blob_key = f"documents/{document_id.hex[:2]}/{document_id.hex}"
        self.blobs.put(
            blob_key,
            seal_document(
                document_key, measured(), document_id=str(document_id), resident_id=resident_id
            ),
        )
        if size == 0:
            self.blobs.delete(blob_key)
            raise InvalidInput("file", "is empty")
        wrapped = self.keys.wrap_document_key(resident_id, str(document_id), document_key)
        return {
            "size": size,
            "content_sha256": digest.hexdigest(),
            "blob_key": blob_key,
            "sealed_key": base64.b64encode(wrapped).decode(),
        }

    def _document(self, document_id: UUID | str) -> Document:
        try:
            document: Document = self.repository.get(parse_uuid("document_id", document_id))
        except AggregateNotFoundError:
            raise DocumentNotFound(f"document {document_id} not found") from None
        if not isinstance(document, Document):
            raise DocumentNotFound(f"document {document_id} not found")
        return document

    def _consent(self, consent_id: UUID | str) -> Consent:
        try:
            consent: Consent = self.repository.get(parse_uuid("consent_id", consent_id))
        except AggregateNotFoundError:
            raise ConsentNotFound(f"consent {consent_id} not found") from None
        if not isinstance(consent, Consent):
            raise ConsentNotFound(f"consent {consent_id} not found")
        return consent

    @staticmethod
    def _active_resident(resident: Resident) -> Resident:
        if resident.is_erased:
            raise ResidentErased(f"resident {resident.resident_id} was erased")
        return resident

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run a read-decide-save step, again on a concurrent write, with jittered back-off."""
        for n in range(self.max_attempts):
            try:
                return attempt()
            except IntegrityError:
                time.sleep(random.uniform(0, min(0.05, 0.0005 * 2**n)))  # noqa: S311
        raise Contention("too many concurrent changes; try again")


def _pieces(content: Source) -> Iterable[bytes]:
    read = getattr(content, "read", None)
    if read is None:
        return content  # type: ignore[return-value]
    return iter(lambda: read(1024 * 1024), b"")


def _decrypting(key: bytes, sealed: Iterator[bytes], document: Document) -> Iterator[bytes]:
    try:
        yield from open_document(
            key, sealed, document_id=str(document.id), resident_id=document.resident_id
        )
    except TamperedDocument as e:
        raise ContentCorrupted(f"document {document.id}: {e}") from None
    finally:
        close = getattr(sealed, "close", None)
        if close is not None:
            close()
