"""Looking back: access attempts, and a resident's library as it stood at any time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from eventsourcing.utils import get_topic

from vault.access import AccessAttempt
from vault.base import VaultBase
from vault.consent import Consent
from vault.document import Document
from vault.errors import ResidentNotFound
from vault.ids import check_identifier, check_resident_id, resident_aggregate_id
from vault.inputs import check_aware
from vault.resident import Resident

_PAGE = 1000


@dataclass(frozen=True)
class ResidentReplay:
    """A resident's documents, consents and grade exactly as they stood at ``at``."""

    resident: Resident
    at: datetime
    documents: list[Document]
    consents: list[Consent]


class AuditCommands(VaultBase):
    def access_attempts(
        self,
        *,
        resident_id: str | None = None,
        department: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AccessAttempt]:
        """Access attempts in the order they were recorded, filtered.

        Read from the event log itself; the read models of issue 5 will serve
        this from an index.
        """
        if resident_id is not None:
            check_resident_id(resident_id)
        if department is not None:
            check_identifier("department", department)
        for name, value in (("since", since), ("until", until)):
            if value is not None:
                check_aware(name, value)
        return [
            access
            for access in self._all_access_attempts()
            if (resident_id is None or access.resident_id == resident_id)
            and (department is None or access.department == department)
            and (since is None or access.at >= since)
            and (until is None or access.at < until)
        ]

    def replay_resident(self, resident_id: str, at: datetime) -> ResidentReplay:
        """The resident's library, consents and grade at ``at``, rebuilt from the events."""
        check_resident_id(resident_id)
        resident = cast("Resident | None", self.as_of(resident_aggregate_id(resident_id), at))
        if resident is None:
            raise ResidentNotFound(f"resident {resident_id} was not registered at {at}")
        documents = [cast(Document, self.as_of(d, at)) for d in resident.document_ids]
        consents = [cast(Consent, self.as_of(c, at)) for c in resident.consent_ids]
        return ResidentReplay(resident, at, documents, consents)

    def _all_access_attempts(self) -> Iterator[AccessAttempt]:
        topic = get_topic(AccessAttempt.Recorded)
        start = 1
        while page := self.recorder.select_notifications(start, _PAGE, topics=[topic]):
            for notification in page:
                event: Any = self.mapper.to_domain_event(notification)
                yield event.mutate(None)
            start = page[-1].id + 1
