"""Looking back: a resident's library, consents and grade as they stood at any time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from vault.base import VaultBase
from vault.consent import Consent
from vault.document import Document
from vault.errors import ResidentNotFound
from vault.ids import check_resident_id, resident_aggregate_id
from vault.resident import Resident


@dataclass(frozen=True)
class ResidentReplay:
    """A resident's documents, consents and grade exactly as they stood at ``at``."""

    resident: Resident
    at: datetime
    documents: list[Document]
    consents: list[Consent]


class AuditCommands(VaultBase):
    def replay_resident(self, resident_id: str, at: datetime) -> ResidentReplay:
        """The resident's library, consents and grade at ``at``, rebuilt from the events."""
        check_resident_id(resident_id)
        resident = cast("Resident | None", self.as_of(resident_aggregate_id(resident_id), at))
        if resident is None:
            raise ResidentNotFound(f"resident {resident_id} was not registered at {at}")
        documents = [cast(Document, self.as_of(d, at)) for d in resident.document_ids]
        consents = [cast(Consent, self.as_of(c, at)) for c in resident.consent_ids]
        return ResidentReplay(resident, at, documents, consents)
