"""The credit platform pushes credit grades, one or many at a time."""

from __future__ import annotations

from fastapi import APIRouter, Response

from adapters.http.deps import CurrentCreditPlatform, ResidentsDep, answer_position
from adapters.http.schemas import GradeBatchIn, GradeOutcomeOut
from policy.scales import Grade
from vault.errors import InvalidInput
from vault.inputs import GradeUpdate

router = APIRouter(prefix="/v1/credit", tags=["credit platform"])


@router.post("/grades")
def push_grades(
    body: GradeBatchIn, response: Response, platform: CurrentCreditPlatform,
    residents: ResidentsDep,
) -> GradeOutcomeOut:
    """Apply grades; an older or equal sequence for a resident is stale and changes nothing.

    The whole batch is checked first: one bad row rejects it, naming the row.
    Idempotent: pushing the same batch again only counts stale rows.
    """
    updates = []
    for index, row in enumerate(body.updates):
        try:
            grade = Grade(row.grade)
        except ValueError:
            raise InvalidInput(f"updates[{index}].grade", "must be one of A, B, C, D") from None
        updates.append(GradeUpdate(row.resident_id, grade, row.effective_at, row.sequence))
    outcome = residents.record_grades(updates)
    answer_position(response, outcome.position)
    return GradeOutcomeOut(applied=outcome.applied, stale=outcome.stale, erased=outcome.erased)
