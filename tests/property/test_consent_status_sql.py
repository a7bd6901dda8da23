"""The read models choose live consents in SQL; that SQL says what consent_status says."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.settings import Settings
from adapters.wiring import open_services
from projections.schema import active_generation, stamp
from projections.tables import CONSENTS
from vault.consent import ConsentStatus, consent_status

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
# Times near now (the boundaries: equal, a microsecond either side) and far from it, in
# years whose text needs padding.
offsets = st.sampled_from(
    [timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1),
     timedelta(days=1), -timedelta(days=1)]
)
moments = st.one_of(
    offsets.map(lambda d: NOW + d),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
)
consent_rows = st.fixed_dictionaries(
    {
        "revoked": st.booleans(),
        "max_uses": st.one_of(st.none(), st.integers(1, 3)),
        "uses": st.integers(0, 4),
        "valid_from": moments,
        "valid_until": moments,
    }
)


@settings(max_examples=25)
@given(rows=st.lists(consent_rows, min_size=1, max_size=12))
def test_the_consents_a_department_holds_are_those_consent_status_calls_active(
    fresh_settings: Callable[[], Settings], rows: list[dict[str, object]]
) -> None:
    with open_services(fresh_settings()) as services:
        db = services.view_runner.db
        expected = set()
        with db.transaction() as run:
            table = CONSENTS.name(db, active_generation(run, db))
            for position, row in enumerate(rows, 1):
                consent_id = str(uuid.uuid4())
                revoked_at = NOW - timedelta(hours=1) if row["revoked"] else None
                status = consent_status(
                    revoked_at=revoked_at, max_uses=row["max_uses"],  # type: ignore[arg-type]
                    uses=row["uses"], valid_from=row["valid_from"],  # type: ignore[arg-type]
                    valid_until=row["valid_until"], now=NOW,  # type: ignore[arg-type]
                )
                if status is ConsentStatus.ACTIVE:
                    expected.add(consent_id)
                run(
                    CONSENTS.insert(table),
                    CONSENTS.row(
                        consent_id=consent_id, resident_id="r1", position=position,
                        department="civil-affairs", doc_types=json.dumps(["id-card"]),
                        purpose="subsistence-allowance",
                        valid_from=stamp(row["valid_from"]),  # type: ignore[arg-type]
                        valid_until=stamp(row["valid_until"]),  # type: ignore[arg-type]
                        max_uses=row["max_uses"], uses=row["uses"],
                        revoked_at=stamp(revoked_at), granted_at=stamp(NOW),
                    ),
                )
        held = services.views.consents_held("civil-affairs", NOW)
        assert {c.consent_id for c in held} == expected
        assert all(c.status(NOW) is ConsentStatus.ACTIVE for c in held)
