"""Documents: filed once (blob first, event second), verified, superseded, revoked,
withdrawn; their bytes decrypted as they stream; blobs no event refers to swept away."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.utils import get_topic

from keys.envelope import Source, new_document_key, open_document, read_pieces, seal_document
from keys.errors import ResidentKeyShredded, TamperedDocument
from vault.document import Document
from vault.errors import (
    BlobMissing,
    ContentCorrupted,
    DocumentNotFound,
    InvalidInput,
    ResidentErased,
)
from vault.ids import check_identifier, parse_uuid
from vault.inputs import DocumentDetails, check_text
from vault.ports import BlobNotFound, BlobStore, Clock, DataKeys, EventLog
from vault.services.residents import Residents
from vault.store import Store, Written

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
        keys: DataKeys,
        blobs: BlobStore,
        log: EventLog,
        clock: Clock,
        *,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    ) -> None:
        self._store = store
        self._residents = residents
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
        self._residents.register(resident_id)
        return self._file(resident_id, content, details, replaces, Document.submit)

    def issue(
        self,
        department: str,
        officer: str,
        resident_id: str,
        content: Source,
        details: DocumentDetails,
        *,
        replaces: UUID | str | None = None,
    ) -> Written[Document]:
        """A department issues a document into a resident's library (trust level A)."""
        check_identifier("department", department)
        check_text("officer", officer, 128)
        self._residents.register(resident_id)

        def issue(document_id: UUID, **fields: Any) -> Document:
            return Document.issue(document_id, department=department, officer=officer, **fields)

        return self._file(resident_id, content, details, replaces, issue)

    def verify(
        self, department: str, officer: str, document_id: UUID | str
    ) -> Written[Document]:
        """An officer checked the document against its original: trust level B."""
        check_identifier("department", department)
        check_text("officer", officer, 128)

        def verify() -> Written[Document]:
            document = self.find(document_id)
            self._residents.active(document.resident_id)
            document.verify(department, officer, self._clock.now())
            return Written(document, self._store.save(document))

        return self._store.retrying(verify)

    def withdraw(self, resident_id: str, document_id: UUID | str) -> Written[Document]:
        """The resident withdraws a document; no department can fetch it again."""

        def withdraw() -> Written[Document]:
            document = self.document(resident_id, document_id)
            document.withdraw(self._clock.now())
            return Written(document, self._store.save(document))

        return self._store.retrying(withdraw)

    def revoke(self, department: str, document_id: UUID | str, reason: str) -> Written[Document]:
        """The issuing department revokes a document it issued."""
        check_identifier("department", department)
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
        """One of the resident's own documents; another resident's is 'not found'."""
        document = self.find(document_id)
        if document.resident_id != resident_id:
            raise DocumentNotFound(f"document {document_id} not found")
        self._residents.active(resident_id)
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
        resident_id: str,
        content: Source,
        details: DocumentDetails,
        replaces: UUID | str | None,
        create: Callable[..., Document],
    ) -> Written[Document]:
        replaced_id = parse_uuid("replaces", replaces) if replaces is not None else None
        self._residents.active(resident_id)
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
                "replaces": replaced_id,
                **stored,
            }
            return self._store.retrying(lambda: self._record_filing(document_id, fields, create))
        except BaseException:
            self._discard_unfiled_blob(document_id, blob_key)
            raise

    def _record_filing(
        self, document_id: UUID, fields: dict[str, Any], create: Callable[..., Document]
    ) -> Written[Document]:
        """Event second: the document, the resident's index and any older version, atomically."""
        resident = self._residents.active(fields["resident_id"])
        old = (
            self._check_replaceable(fields["resident_id"], fields["replaces"], fields["doc_type"])
            if fields["replaces"] is not None
            else None
        )
        now = self._clock.now()  # after loading: later than anything loaded
        document = create(document_id, at=now, **fields)
        resident.file_document(document.id, now)
        changed: list[Any] = [resident, document]
        if old is not None:
            old.supersede(document.id, now)
            changed.append(old)
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
