"""Departments: what they may fetch, fetching with a recorded access event, fast-track tracks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID, uuid4

from policy.decision import TrackDecision
from vault.access import AccessAttempt
from vault.consent import Consent
from vault.consent_commands import ConsentCommands
from vault.document import Document
from vault.document_commands import DocumentCommands
from vault.errors import AccessDenied, DocumentNotFound, ResidentNotFound
from vault.ids import check_identifier, check_resident_id, parse_uuid
from vault.inputs import check_text
from vault.judgement import judge_fetch, record_fetch
from vault.policy_commands import PolicyCommands
from vault.resident import Resident


@dataclass(frozen=True)
class Fetched:
    """An allowed fetch: its recorded access event, the document and its bytes."""

    access: AccessAttempt
    document: Document
    content: Iterator[bytes]


class AccessCommands(DocumentCommands, ConsentCommands, PolicyCommands):
    def fetch_document(
        self,
        *,
        officer: str,
        department: str,
        resident_id: str,
        document_id: UUID | str,
        purpose: str,
        request_id: str | None = None,
    ) -> Fetched:
        """Fetch a resident's document for a purpose.

        Every attempt, allowed or denied, records exactly one access event, and
        it is committed before any byte is returned. An allowed fetch consumes
        one use of the consent on the consent itself and marks the document
        reused, in the same transaction, so a revoke or a withdrawal that was
        acknowledged first makes it re-judge and be denied.
        """
        check_text("officer", officer, 128)
        check_identifier("department", department)
        check_resident_id(resident_id)
        check_identifier("purpose", purpose)
        document_uuid = parse_uuid("document_id", document_id)
        request_id = check_text("request_id", request_id or uuid4().hex, 128)

        def attempt() -> tuple[AccessAttempt, Document | None]:
            resident = self._resident_or_none(resident_id)
            document = self._document_of(resident_id, document_uuid)
            access, changed = record_fetch(
                resident=resident,
                resident_id=resident_id,
                document=document,
                document_id=document_uuid,
                consents=self._consents_of(resident, department, purpose),
                officer=officer,
                department=department,
                purpose=purpose,
                point=self.decision_point(),
                request_id=request_id,
                now=self.clock.now(),
            )
            self.save(*changed)
            return access, document

        # Fetches for one resident in this process take turns: they would otherwise conflict
        # on the same consent and document and retry against each other. Other processes
        # still serialise through the event store's optimistic concurrency.
        with self._resident_locks.lock_for(resident_id):
            access, document = self._retrying(attempt)
        if not access.allowed or document is None:
            reasons = access.reasons if isinstance(access.reasons, tuple) else ()
            raise AccessDenied(
                "; ".join(reasons or access.reason_codes),
                access.reason_codes,
                reasons,
                access.id,
                self.last_position(),
            )
        return Fetched(access, document, self.document_content(document))

    def fetchable_documents(
        self, *, officer: str, department: str, resident_id: str, purpose: str
    ) -> list[Document]:
        """The resident's documents this department may fetch now for this purpose."""
        check_text("officer", officer, 128)
        check_identifier("department", department)
        check_identifier("purpose", purpose)
        resident = self._active_resident(resident_id)
        consents = self._consents_of(resident, department, purpose)
        point = self.decision_point()
        now = self.clock.now()
        documents = (self._document(d) for d in resident.document_ids)
        return [
            document
            for document in documents
            if judge_fetch(
                resident=resident,
                document=document,
                consents=consents,
                officer=officer,
                department=department,
                purpose=purpose,
                point=point,
                now=now,
            ).allowed
        ]

    def tracks_for(self, resident_id: str, service: str) -> TrackDecision:
        """The fast-track tracks that apply to the resident for a service, with reasons."""
        check_identifier("service_id", service)
        resident = self._active_resident(resident_id)
        return self.decision_point().tracks(service, resident.grade)

    def _consents_of(
        self, resident: Resident | None, department: str, purpose: str
    ) -> list[Consent]:
        if resident is None or resident.is_erased:
            return []
        return [self._consent(c) for c in resident.consents_for(department, purpose)]

    def _resident_or_none(self, resident_id: str) -> Resident | None:
        try:
            return self.resident(resident_id)
        except ResidentNotFound:
            return None

    def _document_of(self, resident_id: str, document_id: UUID) -> Document | None:
        try:
            document = self._document(document_id)
        except DocumentNotFound:
            return None
        return document if document.resident_id == resident_id else None
