"""Residents: registered on first use, graded by the credit platform, erased on request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from eventsourcing.persistence import IntegrityError

from vault.errors import ResidentErased, ResidentNotFound
from vault.ids import check_resident_id, resident_aggregate_id
from vault.inputs import GradeUpdate, check_grade_updates
from vault.ports import Clock, DataKeys
from vault.resident import Resident
from vault.store import Store, Written

GRADE_BATCH = 500
"""Residents whose grades are written in one transaction."""


@dataclass(frozen=True)
class GradeOutcome:
    applied: int
    stale: int
    erased: int
    position: int | None = None
    """Where the last grade recorded landed in the log (None if none was)."""


class Residents:
    def __init__(self, store: Store, keys: DataKeys, clock: Clock) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock

    def register(self, resident_id: str) -> Written[Resident]:
        """Register a resident on first use; registering again returns the same resident."""
        check_resident_id(resident_id)
        try:
            return Written(self.resident(resident_id), None)
        except ResidentNotFound:
            pass
        self._keys.create(resident_id)
        resident = Resident(resident_id=resident_id, timestamp=self._clock.now())
        try:
            position = self._store.save(resident)
        except IntegrityError:
            return Written(self.resident(resident_id), None)
        return Written(resident, position)

    def resident(self, resident_id: str) -> Resident:
        """A registered resident (erased ones included)."""
        check_resident_id(resident_id)
        found = self._store.find(resident_aggregate_id(resident_id))
        if not isinstance(found, Resident):
            raise ResidentNotFound(f"resident {resident_id} is not registered")
        return found

    def active(self, resident_id: str) -> Resident:
        """A registered resident who has not been erased."""
        return still_active(self.resident(resident_id))

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
            outcome = self._store.retrying(partial(self._apply_grades, batch))
            totals = GradeOutcome(
                totals.applied + outcome.applied,
                totals.stale + outcome.stale,
                totals.erased + outcome.erased,
                outcome.position or totals.position,
            )
        return totals

    def _apply_grades(self, batch: dict[str, list[GradeUpdate]]) -> GradeOutcome:
        applied = stale = erased = 0
        changed: list[Resident] = []
        new: list[str] = []
        self._keys.prefetch(batch)  # grades are sealed: one key query for the whole batch
        loaded: dict[str, Resident | None] = {}
        for resident_id in batch:
            try:
                loaded[resident_id] = self.resident(resident_id)
            except ResidentNotFound:
                loaded[resident_id] = None
        now = self._clock.now()  # after loading: later than anything loaded
        for resident_id, rows in batch.items():
            resident = loaded[resident_id]
            if resident is None:
                resident = Resident(resident_id=resident_id, timestamp=now)
                new.append(resident_id)
            if resident.is_erased:
                erased += len(rows)
                continue
            for row in rows:  # in arrival order: a later row with a lower sequence is stale
                if resident.record_grade(row.grade, row.sequence, row.effective_at, now):
                    applied += 1
                else:
                    stale += 1
            changed.append(resident)
        self._keys.create_many(new)
        position = self._store.save(*changed)
        return GradeOutcome(applied, stale, erased, position)

    def erase(self, resident_id: str) -> Written[None]:
        """Erase a resident: destroy their key, then record it. Safe to repeat.

        The key goes first: once it is gone nothing personal can be read, even if
        the process dies before the event is written; asking again completes it.
        """
        resident = self.resident(resident_id)
        self._keys.shred(resident_id)
        # Cached aggregates hold decrypted personal fields: drop them from this process now.
        self._store.forget(resident.id, *resident.document_ids, *resident.consent_ids)

        def record() -> int | None:
            resident = self.resident(resident_id)
            if resident.is_erased:
                return None
            resident.erase(self._clock.now())
            return self._store.save(resident)

        return Written(None, self._store.retrying(record))


def still_active(resident: Resident) -> Resident:
    """The resident, if not erased; else :class:`ResidentErased`."""
    if resident.is_erased:
        raise ResidentErased(f"resident {resident.resident_id} was erased")
    return resident
