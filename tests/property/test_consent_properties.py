"""Consent use is allowed exactly when the consent is active, covers the request, has uses left."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from vault.consent import Consent
from vault.errors import ConsentDenied

START = datetime(2026, 1, 1, tzinfo=UTC)
DEPARTMENTS = ["civil-affairs", "housing"]
DOC_TYPES = ["id-card", "diploma", "income-proof"]
PURPOSES = ["subsistence-allowance", "housing-subsidy"]

attempt = st.tuples(
    st.sampled_from(["use", "revoke"]),
    st.sampled_from(DEPARTMENTS),
    st.sampled_from(DOC_TYPES),
    st.sampled_from(PURPOSES),
    st.integers(-5, 40),  # day offset of the attempt
)


@given(
    doc_types=st.lists(st.sampled_from(DOC_TYPES), min_size=1, max_size=3, unique=True),
    window=st.tuples(st.integers(0, 10), st.integers(1, 30)),
    max_uses=st.one_of(st.none(), st.integers(1, 4)),
    attempts=st.lists(attempt, max_size=25),
)
def test_use_is_allowed_exactly_when_every_condition_holds(
    doc_types: list[str],
    window: tuple[int, int],
    max_uses: int | None,
    attempts: list[tuple[str, str, str, str, int]],
) -> None:
    valid_from = START + timedelta(days=window[0])
    valid_until = valid_from + timedelta(days=window[1])
    consent = Consent(
        resident_id="r1",
        department="civil-affairs",
        doc_types=doc_types,
        purpose="subsistence-allowance",
        valid_from=valid_from,
        valid_until=valid_until,
        max_uses=max_uses,
        granted_at=START,
        timestamp=START,
    )
    uses, revoked = 0, False
    for kind, department, doc_type, purpose, day in attempts:
        now = START + timedelta(days=day)
        if kind == "revoke":
            if not revoked:
                consent.revoke(now)
                revoked = True
            continue
        expected = (
            not revoked
            and valid_from <= now < valid_until
            and (max_uses is None or uses < max_uses)
            and department == "civil-affairs"
            and doc_type in doc_types
            and purpose == "subsistence-allowance"
        )
        try:
            consent.use(
                department=department,
                doc_type=doc_type,
                purpose=purpose,
                document_id=uuid.uuid4(),
                request_id="r",
                now=now,
            )
            allowed = True
        except ConsentDenied:
            allowed = False
        assert allowed == expected
        uses += allowed
        assert consent.uses == uses
