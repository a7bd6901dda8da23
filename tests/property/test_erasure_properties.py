"""Invariant 7: after erasure nothing personal decrypts, and the log still replays."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.settings import Settings
from adapters.wiring import open_services
from keys.errors import ResidentKeyShredded
from policy.scales import Grade
from tests.property.test_replay_properties import fold_log
from tests.support import MovableClock
from vault.errors import ResidentErased
from vault.ids import resident_aggregate_id
from vault.inputs import DocumentDetails, GradeUpdate
from vault.markers import ERASED

# The CJK prefix keeps a title from ever matching field names or topics in the stored JSON.
titles = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=20
).map(lambda text: "证照" + text)
documents = st.lists(
    st.tuples(titles, st.binary(min_size=1, max_size=3000)), min_size=1, max_size=3
)


@settings(max_examples=10)
@given(
    holdings=st.lists(documents, min_size=2, max_size=3),
    erase_mask=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_erasure_shreds_personal_fields_and_bytes_but_replay_still_works(
    fresh_settings: Callable[[], Settings],
    holdings: list[list[tuple[str, bytes]]],
    erase_mask: list[bool],
) -> None:
    services = open_services(fresh_settings(), clock=MovableClock())
    try:
        filed: dict[str, list[tuple[Any, str, bytes]]] = {}
        revocations: dict[str, tuple[Any, str]] = {}
        for n, docs in enumerate(holdings):
            resident_id = f"resident-{n}"
            for title, content in docs:
                document = services.documents.submit(
                    resident_id,
                    [content],
                    DocumentDetails(doc_type="diploma", title=title, filename=f"{title}.pdf"),
                ).value
                filed.setdefault(resident_id, []).append((document.id, title, content))
            issued = services.documents.issue(
                "public-security", "o", resident_id, [b"card"], DocumentDetails("id-card", "身份证")
            ).value
            reason = f"注销原因 {resident_id}"
            services.documents.revoke("public-security", issued.id, reason)
            revocations[resident_id] = (issued.id, reason)
            grade = GradeUpdate(resident_id, Grade.D, datetime.now(UTC), 1)
            services.residents.record_grades([grade])
        erased = {r for n, r in enumerate(filed) if erase_mask[n]}
        for resident_id in erased:
            services.residents.erase(resident_id)

        folded = fold_log(services)  # replay from zero still works
        _check_revocations_and_grades(folded, revocations, erased)
        for resident_id, docs in filed.items():
            for document_id, title, content in docs:
                document: Any = folded[document_id]
                if resident_id in erased:
                    assert document.title is ERASED
                    assert document.filename is ERASED
                    assert document.content_sha256 is ERASED
                    with pytest.raises(ResidentErased):
                        b"".join(services.documents.content(document))
                    with pytest.raises(ResidentKeyShredded):
                        services.keys.unwrap_document_key(
                            resident_id, str(document_id), base64.b64decode(document.sealed_key)
                        )
                else:
                    assert document.title == title
                    assert b"".join(services.documents.content(document)) == content

        stored = b"".join(n.state for n in services.events.select_notifications(1, 10_000))
        for docs in filed.values():
            for _, title, content in docs:
                assert title.encode() not in stored
                assert hashlib.sha256(content).hexdigest().encode() not in stored
        for _, reason in revocations.values():
            assert reason.encode() not in stored
        assert b'"grade"' not in stored  # grades are sealed, never stored in clear
    finally:
        services.close()


def _check_revocations_and_grades(
    folded: dict[Any, Any], revocations: dict[str, tuple[Any, str]], erased: set[str]
) -> None:
    for resident_id, (issued_id, reason) in revocations.items():
        revoked = folded[issued_id]
        resident = folded[resident_aggregate_id(resident_id)]
        if resident_id in erased:
            assert revoked.end_reason is ERASED
            assert resident.grade is None
            assert resident.grade_sequence == 1  # ordering survives, the grade does not
        else:
            assert revoked.end_reason == reason
            assert resident.grade is Grade.D
