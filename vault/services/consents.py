"""Consents: granted with a signed receipt, revoked by the resident."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from keys.receipts import ConsentTerms
from vault.consent import Consent
from vault.errors import ConsentNotFound, InvalidInput
from vault.ids import parse_uuid
from vault.inputs import ConsentRequest
from vault.ports import Clock, ReceiptSigner
from vault.services.residents import Residents
from vault.store import Store, Written


@dataclass(frozen=True)
class GrantedConsent:
    consent: Consent
    receipt: str
    """A compact JWS (EdDSA) over the consent's terms, after the Kantara Consent Receipt."""
    position: int | None
    """Where the grant landed in the log."""


def receipt_for(consent: Consent, sign: ReceiptSigner) -> str:
    """The signed receipt of a consent's terms (compact JWS)."""
    return sign(
        ConsentTerms(
            consent_id=str(consent.id),
            resident_id=consent.resident_id,
            department=consent.department,
            doc_types=consent.doc_types,
            purpose=consent.purpose,
            valid_from=consent.valid_from,
            valid_until=consent.valid_until,
            max_uses=consent.max_uses,
            granted_at=consent.granted_at,
        )
    )


class Consents:
    def __init__(
        self, store: Store, residents: Residents, clock: Clock, sign_receipt: ReceiptSigner
    ) -> None:
        self._store = store
        self._residents = residents
        self._clock = clock
        self._sign_receipt = sign_receipt

    def grant(self, resident_id: str, request: ConsentRequest) -> GrantedConsent:
        """The resident lets one department fetch some document types for one purpose."""
        self._residents.register(resident_id)
        if request.valid_until <= self._clock.now():
            raise InvalidInput("valid_until", "must be in the future")

        def grant() -> Written[Consent]:
            resident = self._residents.active(resident_id)
            now = self._clock.now()  # after loading: later than anything loaded
            consent = Consent(
                resident_id=resident_id,
                department=request.department,
                doc_types=list(request.doc_types),
                purpose=request.purpose,
                valid_from=request.valid_from or now,
                valid_until=request.valid_until,
                max_uses=request.max_uses,
                granted_at=now,
                timestamp=now,
            )
            resident.file_consent(consent.id, consent.department, consent.purpose, now)
            return Written(consent, self._store.save(resident, consent))

        granted = self._store.retrying(grant)
        consent = granted.value
        return GrantedConsent(consent, receipt_for(consent, self._sign_receipt), granted.position)

    def revoke(self, resident_id: str, consent_id: UUID | str) -> Written[Consent]:
        """Once this returns, no fetch under the consent can succeed."""

        def revoke() -> Written[Consent]:
            consent = self.consent(resident_id, consent_id)
            consent.revoke(self._clock.now())
            return Written(consent, self._store.save(consent))

        return self._store.retrying(revoke)

    def consent(self, resident_id: str, consent_id: UUID | str) -> Consent:
        """One of the resident's own consents; another resident's is 'not found'."""
        consent = self._store.get(Consent, parse_uuid("consent_id", consent_id), ConsentNotFound)
        if consent.resident_id != resident_id:
            raise ConsentNotFound(f"consent {consent_id} not found")
        self._residents.active(resident_id)
        return consent
