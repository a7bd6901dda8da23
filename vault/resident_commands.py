"""Residents: lazy registration, credit grades from the credit platform, erasure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from eventsourcing.persistence import IntegrityError

from vault.base import VaultBase
from vault.errors import ResidentNotFound
from vault.ids import check_resident_id
from vault.inputs import GradeUpdate, check_grade_updates
from vault.resident import Resident

GRADE_BATCH = 500
"""Residents whose grades are written in one transaction."""


@dataclass(frozen=True)
class GradeOutcome:
    applied: int
    stale: int
    erased: int


class ResidentCommands(VaultBase):
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

    def record_grades(self, updates: Sequence[GradeUpdate]) -> GradeOutcome:
        """Apply credit grades in few transactions; older or equal sequences are stale.

        The whole batch is checked first; a bad row rejects it with its index.
        """
        check_grade_updates(updates)
        by_resident: dict[str, list[GradeUpdate]] = {}
        for update in updates:
            by_resident.setdefault(update.resident_id, []).append(update)
        totals = GradeOutcome(0, 0, 0)
        residents = list(by_resident)
        for start in range(0, len(residents), GRADE_BATCH):
            batch = {rid: by_resident[rid] for rid in residents[start : start + GRADE_BATCH]}
            outcome = self._retrying(partial(self._apply_grades, batch))
            totals = GradeOutcome(
                totals.applied + outcome.applied,
                totals.stale + outcome.stale,
                totals.erased + outcome.erased,
            )
        return totals

    def _apply_grades(self, batch: dict[str, list[GradeUpdate]]) -> GradeOutcome:
        applied = stale = erased = 0
        changed: list[Resident] = []
        new: list[str] = []
        self.keys.prefetch(batch)  # grades are sealed: one key query for the whole batch
        for resident_id, rows in batch.items():
            try:
                resident = self.resident(resident_id)
            except ResidentNotFound:
                resident = Resident(resident_id=resident_id)
                new.append(resident_id)
            if resident.is_erased:
                erased += len(rows)
                continue
            for row in rows:  # in arrival order: a later row with a lower sequence is stale
                if resident.record_grade(row.grade, row.sequence, row.effective_at):
                    applied += 1
                else:
                    stale += 1
            changed.append(resident)
        self.keys.create_many(new)
        self.save(*changed)
        return GradeOutcome(applied, stale, erased)

    def erase_resident(self, resident_id: str) -> None:
        """Erase a resident: destroy their key, then record it. Safe to repeat.

        The key goes first: once it is gone nothing personal can be read, even if
        the process dies before the event is written; asking again completes it.
        """
        resident = self.resident(resident_id)
        self.keys.shred(resident_id)
        # Cached aggregates hold decrypted personal fields: drop them from this process now.
        self._forget(resident.id, *resident.document_ids, *resident.consent_ids)

        def record() -> None:
            resident = self.resident(resident_id)
            if not resident.is_erased:
                resident.erase(self.clock.now())
                self.save(resident)

        self._retrying(record)
