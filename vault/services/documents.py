"""Documents: filed once (blob first, event second), verified, superseded, revoked,
withdrawn; their bytes decrypted as they stream; blobs no event refers to swept away."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn
from uuid import UUID, uuid4

from eventsourcing.utils import get_topic

from keys.envelope import Source, new_document_key, open_document, read_pieces, seal_document
from keys.errors import ResidentKeyShredded, TamperedDocument
from vault.attestation import (
    ISSUE,
    VERIFY,
    AttestationAttempt,
    AttestationJudgement,
    judge_attestation,
)
from vault.document import Document, DocumentStatus
from vault.errors import (
    AccessDenied,
    AlreadyTrusted,
    AttestationDenied,
    BlobMissing,
    ContentCorrupted,
    DocumentGone,
    DocumentNotFound,
    DocumentRevoked,
    DocumentSuperseded,
    DocumentWithdrawn,
    InvalidInput,
    ResidentErased,
    VaultError,
)
from vault.ids import check_resident_id, parse_uuid
from vault.inputs import DocumentDetails, check_known, check_text
from vault.ports import BlobNotFound, BlobStore, Clock, DataKeys, EventLog
from vault.resident import Resident
from vault.services.policies import Policies
from vault.services.residents import Residents, still_active
from vault.store import Store, Written, first_then

DEFAULT_MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MIN_GC_GRACE = timedelta(minutes=5)
"""gc never deletes a younger blob: an upload's blob is written moments before its event."""
_UPLOAD_READ = 1024 * 1024


@dataclass(frozen=True)
class GarbageReport:
    """What a garbage collection examined and did."""

    examined: int
    deleted: int
    referenced: int
    too_young: int


class Documents:
    def __init__(
        self,
        store: Store,
        residents: Residents,
        policies: Policies,
        keys: DataKeys,
        blobs: BlobStore,
        log: EventLog,
        clock: Clock,
        *,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    ) -> None:
        self._store = store
        self._residents = residents
        self._policies = policies
        self._keys = keys
        self._blobs = blobs
        self._log = log
        self._clock = clock
        self.max_document_bytes = max_document_bytes

    def submit(
        self,
        resident_id: str,
        content: Source,
        details: DocumentDetails,
        *,
        replaces: UUID | str | None = None,
    ) -> Written[Document]:
        """A resident uploads a document (trust level C), optionally replacing an older one."""
        resident = self._residents.register(resident_id).value

        def submit(document_id: UUID, at: datetime, **fields: Any) -> list[Any]:
            return [Document.submit(document_id, at=at, **fields)]

        return self._file(resident, content, details, replaces, submit)

    def issue(
        self,
        department: str,
        officer: str,
        resident_id: str,
        content: Source,
        details: DocumentDetails,
        *,
        replaces: UUID | str | None = None,
        request_id: str | None = None,
        together: Callable[[Document], Sequence[object]] = lambda _: (),
    ) -> Written[Document]:
        """A department issues a document into a resident's library (trust level A), if
        the policy lets it issue that document type. Every attempt is recorded; a refused
        one is :class:`AttestationDenied` and stores nothing of the document.

        ``together`` gives what else changes with the filing, saved in its transaction
        (the approval that issues an application's notice): called again on each attempt
        of the save, with the document about to be filed; if it raises, nothing is filed
        and the sealed content is discarded."""
        check_known("department", "department", department)
        check_text("officer", officer, 128)
        check_resident_id(resident_id)
        request = check_text("request_id", request_id or uuid4().hex, 128)
        point = self._policies.decision_point()
        judged = judge_attestation(
            act=ISSUE, resident=None, document=None, doc_type=details.doc_type,
            officer=officer, department=department, point=point,
        )
        if not judged.allowed:
            self._refuse(judged, officer, department, ISSUE, resident_id, uuid4(),
                         details.doc_type, request)
        resident = self._residents.register(resident_id).value
        judged = judge_attestation(
            act=ISSUE, resident=resident, document=None, doc_type=details.doc_type,
            officer=officer, department=department, point=point,
        )
        if not judged.allowed:  # erased
            self._refuse(judged, officer, department, ISSUE, resident_id, uuid4(),
                         details.doc_type, request)

        def issue(document_id: UUID, at: datetime, **fields: Any) -> list[Any]:
            attempt = AttestationAttempt.record(
                judged, resident_id=resident_id, officer=officer, department=department,
                act=ISSUE, document_id=document_id, doc_type=details.doc_type,
                request_id=request, at=at,
            )
            document = Document.issue(
                document_id, department=department, officer=officer, at=at, **fields
            )
            return [attempt, document]

        return self._file(resident, content, details, replaces, issue, together)

    def verify(
        self,
        department: str,
        officer: str,
        document_id: UUID | str,
        *,
        request_id: str | None = None,
    ) -> Written[Document]:
        """An officer checked the document against its original: trust level B, if the
        policy lets the department verify that document type. Every attempt is recorded;
        a refused one changes nothing of the document."""
        check_known("department", "department", department)
        check_text("officer", officer, 128)
        request = check_text("request_id", request_id or uuid4().hex, 128)

        def verify() -> tuple[Written[Document], VaultError | None]:
            document = self.find(document_id)
            resident = self._residents.resident(document.resident_id)
            judged = judge_attestation(
                act=VERIFY, resident=resident, document=document, doc_type=document.doc_type,
                officer=officer, department=department, point=self._policies.decision_point(),
            )
            now = self._clock.now()  # after loading: later than anything loaded
            attempt = AttestationAttempt.record(
                judged, resident_id=document.resident_id, officer=officer,
                department=department, act=VERIFY, document_id=document.id,
                doc_type=document.doc_type, request_id=request, at=now,
            )
            if not judged.allowed:
                return Written(document, self._store.save(attempt)), _denied(judged, attempt)
            document.verify(department, officer, now)
            return Written(document, self._store.save(attempt, document)), None

        verified, denied = self._store.retrying(verify)
        if denied is not None:
            if isinstance(denied, AccessDenied):
                denied.position = verified.position
            raise denied
        return verified

    def _refuse(
        self,
        judged: AttestationJudgement,
        officer: str,
        department: str,
        act: str,
        resident_id: str,
        document_id: UUID,
        doc_type: str,
        request_id: str,
    ) -> NoReturn:
        """Record a refused attempt, then raise why it was refused."""
        attempt = AttestationAttempt.record(
            judged, resident_id=resident_id, officer=officer, department=department,
            act=act, document_id=document_id, doc_type=doc_type, request_id=request_id,
            at=self._clock.now(),
        )
        denied = _denied(judged, attempt)
        position = self._store.save(attempt)
        if isinstance(denied, AccessDenied):
            denied.position = position
        raise denied

    def withdraw(self, resident_id: str, document_id: UUID | str) -> Written[Document]:
        """The resident withdraws a document; no department can fetch it again."""

        def withdraw() -> Written[Document]:
            document = self.document(resident_id, document_id)
            document.withdraw(self._clock.now())
            return Written(document, self._store.save(document))

        return self._store.retrying(withdraw)

    def revoke(self, department: str, document_id: UUID | str, reason: str) -> Written[Document]:
        """The issuing department revokes a document it issued."""
        check_known("department", "department", department)
        check_text("reason", reason, 500)

        def revoke() -> Written[Document]:
            document = self.find(document_id)
            self._residents.active(document.resident_id)
            document.revoke(department, reason, self._clock.now())
            return Written(document, self._store.save(document))

        return self._store.retrying(revoke)

    def find(self, document_id: UUID | str) -> Document:
        """Any document by id, whoever it belongs to (for departments and auditors)."""
        return self._store.get(
            Document, parse_uuid("document_id", document_id), DocumentNotFound
        )

    def document(self, resident_id: str, document_id: UUID | str) -> Document:
        """One of the resident's own documents; another resident's is 'not found', and one
        they withdrew is :class:`DocumentGone`."""
        document = self.find(document_id)
        if document.resident_id != resident_id:
            raise DocumentNotFound(f"document {document_id} not found")
        self._residents.active(resident_id)
        if document.status is DocumentStatus.WITHDRAWN:
            raise DocumentGone(f"document {document_id} was withdrawn")
        return document

    def content(self, document: Document) -> Iterator[bytes]:
        """Decrypt a document's bytes chunk by chunk; fails loudly if the blob was altered."""
        try:
            key = self._keys.unwrap_document_key(
                document.resident_id, str(document.id), base64.b64decode(document.sealed_key)
            )
        except ResidentKeyShredded:
            raise ResidentErased(f"resident {document.resident_id} was erased") from None
        try:
            sealed = self._blobs.get(document.blob_key)
        except BlobNotFound:
            raise BlobMissing(f"blob of document {document.id} is missing") from None
        return _decrypting(key, sealed, document)

    def collect_garbage(
        self, grace: timedelta, progress: Callable[[int], None] | None = None
    ) -> GarbageReport:
        """Delete blobs that no event refers to and that are older than ``grace``.

        An upload writes its blob moments before its event, so ``grace`` is at
        least :data:`MIN_GC_GRACE`; blob times come from the store, so its clock
        must agree with ours to well within that.
        """
        if grace < MIN_GC_GRACE:
            raise InvalidInput("grace", f"must be at least {int(MIN_GC_GRACE.total_seconds())} s")
        cutoff = self._clock.now() - grace
        candidates = list(self._blobs.list())
        referenced = self.referenced_blob_keys()
        deleted = kept_referenced = too_young = 0
        for count, blob in enumerate(candidates, 1):
            if blob.key in referenced:
                kept_referenced += 1
            elif blob.modified_at > cutoff:
                too_young += 1
            else:
                self._blobs.delete(blob.key)
                deleted += 1
            if progress:
                progress(count)
        return GarbageReport(len(candidates), deleted, kept_referenced, too_young)

    def referenced_blob_keys(self) -> set[str]:
        """Every blob key any document event refers to (what ``collect_garbage`` keeps)."""
        topics = [get_topic(Document.Submitted), get_topic(Document.Issued)]
        keys: set[str] = set()
        start = 1
        while page := self._log.select_notifications(start, 1000, topics=topics):
            keys.update(event.blob_key for event in self._log.decode(page))
            start = page[-1].id + 1
        return keys

    def _file(
        self,
        resident: Resident,
        content: Source,
        details: DocumentDetails,
        replaces: UUID | str | None,
        create: Callable[..., list[Any]],
        together: Callable[[Document], Sequence[object]] = lambda _: (),
    ) -> Written[Document]:
        replaced_id = parse_uuid("replaces", replaces) if replaces is not None else None
        if details.expires_at is not None and details.expires_at <= self._clock.now():
            raise InvalidInput("expires_at", "is already past")
        # (an erasure meanwhile fails the save on its version, and the retry finds it)
        resident_id = still_active(resident).resident_id
        if replaced_id is not None:
            self._check_replaceable(resident_id, replaced_id, details.doc_type)
        document_id = uuid4()
        blob_key = f"documents/{document_id.hex[:2]}/{document_id.hex}"
        try:
            stored = self._seal_and_store(resident_id, document_id, blob_key, content)
            fields = {
                "resident_id": resident_id,
                "doc_type": details.doc_type,
                "title": details.title,
                "filename": details.filename,
                "content_type": details.content_type,
                "expires_at": details.expires_at,
                "attributes": dict(details.attributes),
                "replaces": replaced_id,
                **stored,
            }
            resident_now = first_then(resident, lambda: self._residents.active(resident_id))
            return self._store.retrying(lambda: self._record_filing(
                document_id, fields, create, together, resident_now()
            ))
        except BaseException:
            self._discard_unfiled_blob(document_id, blob_key)
            raise

    def _record_filing(
        self, document_id: UUID, fields: dict[str, Any], create: Callable[..., list[Any]],
        together: Callable[[Document], Sequence[object]],
        resident: Resident,
    ) -> Written[Document]:
        """Event second: the document (after the attempt that issued it, if one did), the
        resident's index, any older version and what changes ``together`` with it,
        atomically. A save on a ``resident`` gone stale fails on its version, and the step
        is tried again."""
        old = (
            self._check_replaceable(fields["resident_id"], fields["replaces"], fields["doc_type"])
            if fields["replaces"] is not None
            else None
        )
        now = self._clock.now()  # after loading: later than anything loaded
        *attempt, document = create(document_id, now, **fields)
        resident.file_document(document.id, now)
        changed: list[Any] = [*attempt, resident, document]
        if old is not None:
            old.supersede(document.id, now)
            changed.append(old)
        changed.extend(together(document))
        return Written(document, self._store.save(*changed))

    def _check_replaceable(self, resident_id: str, document_id: UUID, doc_type: str) -> Document:
        old = self.document(resident_id, document_id)
        old.check_available()
        if old.doc_type != doc_type:
            raise InvalidInput("replaces", f"is a {old.doc_type}, not a {doc_type}")
        return old

    def _seal_and_store(
        self, resident_id: str, document_id: UUID, blob_key: str, content: Source
    ) -> dict[str, Any]:
        """Blob first: seal the bytes under a fresh document key and store them durably."""
        if isinstance(content, str):
            raise InvalidInput("file", "must be bytes, not text")
        document_key = new_document_key()
        wrapped = self._store.retrying(
            lambda: self._keys.wrap_document_key(resident_id, str(document_id), document_key)
        )
        digest = hashlib.sha256()
        size = 0
        limit = self.max_document_bytes

        def measured() -> Iterator[bytes]:
            nonlocal size
            for piece in read_pieces(content, _UPLOAD_READ):
                size += len(piece)
                if size > limit:
                    raise InvalidInput("file", f"is larger than the {limit}-byte limit")
                digest.update(piece)
                yield piece

        sealed = seal_document(
            document_key, measured(), document_id=str(document_id), resident_id=resident_id
        )
        self._blobs.put(blob_key, sealed)
        if size == 0:
            raise InvalidInput("file", "is empty")
        return {
            "size": size,
            "content_sha256": digest.hexdigest(),
            "blob_key": blob_key,
            "sealed_key": base64.b64encode(wrapped).decode(),
        }

    def _discard_unfiled_blob(self, document_id: UUID, blob_key: str) -> None:
        """Delete the blob of a document whose event was not written.

        A failure can come after a commit (a connection lost on the way back), so
        the blob goes only once the store confirms there is no event; if that
        cannot be confirmed, the blob stays for ``collect_garbage`` to judge.
        """
        with contextlib.suppress(Exception):  # the original error is the one to report
            if not self._store.has_events(document_id):
                self._blobs.delete(blob_key)


_STATE_ERRORS: dict[str, type[VaultError]] = {
    "resident-erased": ResidentErased,
    "document-withdrawn": DocumentWithdrawn,
    "document-revoked": DocumentRevoked,
    "document-superseded": DocumentSuperseded,
    "already-trusted": AlreadyTrusted,
}


def _denied(judged: AttestationJudgement, attempt: AttestationAttempt) -> VaultError:
    """Why a recorded attempt was refused, as the officer is told it: the policy's reasons
    (requirements only), or the state of the resident or the document."""
    if judged.refused_by_policy:
        told = tuple(r.for_officer for r in judged.reasons)
        return AttestationDenied(
            "; ".join(told), tuple(r.code for r in judged.reasons), told, attempt.id
        )
    return _STATE_ERRORS[judged.reasons[0].code](judged.reasons[0].text)


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
