"""Consents: granted with a signed receipt, revoked by the resident."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from keys.receipts import ConsentTerms
from vault.base import VaultBase
from vault.consent import Consent
from vault.errors import ConsentNotFound, InvalidInput
from vault.inputs import ConsentRequest
from vault.resident_commands import ResidentCommands


@dataclass(frozen=True)
class GrantedConsent:
    consent: Consent
    receipt: str
    """A compact JWS (EdDSA) over the consent's terms, after the Kantara Consent Receipt."""


class ConsentCommands(ResidentCommands, VaultBase):
    def grant_consent(self, resident_id: str, request: ConsentRequest) -> GrantedConsent:
        """The resident lets one department fetch some document types for one purpose."""
        self.register_resident(resident_id)
        now = self.clock.now()
        valid_from = request.valid_from or now
        if request.valid_until <= now:
            raise InvalidInput("valid_until", "must be in the future")

        def grant() -> Consent:
            resident = self._active_resident(resident_id)
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
            resident.file_consent(consent.id, consent.department, consent.purpose)
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

    def consent(self, resident_id: str, consent_id: UUID | str) -> Consent:
        """One of the resident's own consents; another resident's is 'not found'."""
        consent = self._consent(consent_id)
        if consent.resident_id != resident_id:
            raise ConsentNotFound(f"consent {consent_id} not found")
        self._active_resident(resident_id)
        return consent

    def consents(self, resident_id: str) -> list[Consent]:
        """Every consent the resident has given, newest first."""
        resident = self._active_resident(resident_id)
        return [self._consent(c) for c in reversed(resident.consent_ids)]
