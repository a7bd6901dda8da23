"""Documents: filed once (blob first, event second), verified, superseded, revoked, withdrawn."""

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
from vault.base import VaultBase
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
from vault.ports import BlobNotFound
from vault.resident_commands import ResidentCommands

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


class DocumentCommands(ResidentCommands, VaultBase):
    def submit_document(
        self,
        resident_id: str,
        content: Source,
        details: DocumentDetails,
        *,
        replaces: UUID | str | None = None,
    ) -> Document:
        """A resident uploads a document (trust level C), optionally replacing an older one."""
        self.register_resident(resident_id)
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
        self.register_resident(resident_id)

        def issue(document_id: UUID, **fields: Any) -> Document:
            return Document.issue(document_id, department=department, officer=officer, **fields)

        return self._file_document(resident_id, content, details, replaces, issue)

    def verify_document(self, department: str, officer: str, document_id: UUID | str) -> Document:
        """An officer checked the document against its original: trust level B."""
        check_identifier("department", department)
        check_text("officer", officer, 128)

        def verify() -> Document:
            document = self._document(document_id)
            self._active_resident(document.resident_id)
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
            self._active_resident(document.resident_id)
            document.revoke(department, reason, self.clock.now())
            self.save(document)
            return document

        return self._retrying(revoke)

    def find_document(self, document_id: UUID | str) -> Document:
        """Any document by id, whoever it belongs to (for departments and auditors)."""
        return self._document(document_id)

    def document(self, resident_id: str, document_id: UUID | str) -> Document:
        """One of the resident's own documents; another resident's is 'not found'."""
        document = self._document(document_id)
        if document.resident_id != resident_id:
            raise DocumentNotFound(f"document {document_id} not found")
        self._active_resident(resident_id)
        return document

    def library(self, resident_id: str) -> list[Document]:
        """The resident's current documents, newest first."""
        resident = self._active_resident(resident_id)
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

    def referenced_blob_keys(self) -> set[str]:
        """Every blob key any document event refers to."""
        topics = [get_topic(Document.Submitted), get_topic(Document.Issued)]
        keys: set[str] = set()
        start = 1
        while page := self.recorder.select_notifications(start, 1000, topics=topics):
            events: list[Any] = self.mapper.to_domain_events(page)
            keys.update(event.blob_key for event in events)
            start = page[-1].id + 1
        return keys

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

    def _file_document(
        self,
        resident_id: str,
        content: Source,
        details: DocumentDetails,
        replaces: UUID | str | None,
        create: Callable[..., Document],
    ) -> Document:
        replaced_id = parse_uuid("replaces", replaces) if replaces is not None else None
        self._active_resident(resident_id)
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
            return self._retrying(lambda: self._record_filing(document_id, fields, create))
        except BaseException:
            self._discard_unfiled_blob(document_id, blob_key)
            raise

    def _record_filing(
        self, document_id: UUID, fields: dict[str, Any], create: Callable[..., Document]
    ) -> Document:
        """Event second: the document, the resident's index and any older version, atomically."""
        resident = self._active_resident(fields["resident_id"])
        document = create(document_id, **fields)
        resident.file_document(document.id)
        changed: list[Any] = [resident, document]
        if fields["replaces"] is not None:
            old = self._check_replaceable(
                fields["resident_id"], fields["replaces"], fields["doc_type"]
            )
            old.supersede(document.id, self.clock.now())
            changed.append(old)
        self.save(*changed)
        return document

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
        wrapped = self._retrying(
            lambda: self.keys.wrap_document_key(resident_id, str(document_id), document_key)
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
        self.blobs.put(blob_key, sealed)
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
            if not self.recorder.select_events(document_id, limit=1):
                self.blobs.delete(blob_key)


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
