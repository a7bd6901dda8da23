"""Every input check names the field and the problem, before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policy.scales import Grade
from vault.errors import InvalidInput
from vault.ids import check_identifier, check_resident_id, parse_uuid
from vault.inputs import (
    ConsentRequest,
    DocumentDetails,
    GradeUpdate,
    check_grade_updates,
    check_known,
    check_text,
)

NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "-x", "a" * 65, "a b", "a/b", "a:b", None, 7])
def test_bad_resident_ids_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match="resident_id"):
        check_resident_id(value)


@pytest.mark.parametrize("value", ["zhang-wei", "R.1_x", "0" * 64])
def test_good_resident_ids_pass(value: str) -> None:
    assert check_resident_id(value) == value


@pytest.mark.parametrize(
    "value", ["Id-card", "id_card", "id--card", "-id", "id-", "1d", "", "x" * 65]
)
def test_bad_identifiers_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="doc_type"):
        check_identifier("doc_type", value)


def test_bad_ids_are_refused() -> None:
    with pytest.raises(InvalidInput, match="document_id"):
        parse_uuid("document_id", "not-a-uuid")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"doc_type": "ID"}, "doc_type"),
        ({"title": "  "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "bad\x00title"}, "title"),
        ({"title": "证明\u202egpj.exe"}, "title"),  # right-to-left override
        ({"title": "a\u200bb"}, "title"),  # zero-width space
        ({"title": "lone \ud800 surrogate"}, "title"),
        ({"title": "private \ue000 use"}, "title"),
        ({"doc_type": "no-such-type"}, "doc_type"),
        ({"filename": "id\u202efdp.exe"}, "filename"),
        ({"content_type": "pdf"}, "content_type"),
        ({"filename": "../etc/passwd"}, "filename"),
        ({"filename": "a\\b.pdf"}, "filename"),
        ({"expires_at": datetime(2030, 1, 1)}, "expires_at"),
    ],
)
def test_document_details_are_checked(overrides: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"doc_type": "id-card", "title": "居民身份证"}
    args.update(overrides)
    with pytest.raises(InvalidInput) as error:
        DocumentDetails(**args)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"department": "Civil Affairs"}, "department"),
        ({"purpose": ""}, "purpose"),
        ({"department": "no-such-bureau"}, "department"),
        ({"purpose": "no-such-service"}, "purpose"),
        ({"purpose": "id-card"}, "purpose"),  # a document type is not a service
        ({"doc_types": ("id-card", "no-such-type")}, "doc_types"),
        ({"doc_types": "id-card"}, "doc_types"),
        ({"doc_types": ()}, "doc_types"),
        ({"doc_types": ("id-card", "id-card")}, "doc_types"),
        ({"doc_types": ("ID",)}, "doc_types"),
        ({"valid_until": datetime(2030, 1, 1)}, "valid_until"),
        ({"valid_from": NOW + timedelta(days=31)}, "valid_until"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": True}, "max_uses"),
        ({"max_uses": 10**7}, "max_uses"),
    ],
)
def test_consent_requests_are_checked(overrides: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "department": "civil-affairs",
        "doc_types": ("id-card",),
        "purpose": "subsistence-allowance",
        "valid_until": NOW + timedelta(days=30),
    }
    args.update(overrides)
    with pytest.raises(InvalidInput) as error:
        ConsentRequest(**args)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (GradeUpdate("bad id", Grade.A, NOW, 1), "updates[1].resident_id"),
        (GradeUpdate("r2", "E", NOW, 1), "updates[1].grade"),  # type: ignore[arg-type]
        (GradeUpdate("r2", Grade.A, datetime(2026, 1, 1), 1), "updates[1].effective_at"),
        (GradeUpdate("r2", Grade.A, NOW, -1), "updates[1].sequence"),
        (GradeUpdate("r2", Grade.A, NOW, 2**63), "updates[1].sequence"),
        (GradeUpdate("r2", Grade.A, NOW, "1"), "updates[1].sequence"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_grade_row_is_named_by_its_index(row: GradeUpdate, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        check_grade_updates([GradeUpdate("r1", Grade.B, NOW, 1), row])
    assert error.value.field == field


@pytest.mark.parametrize("text", ["居民身份证（正本）", "Zhāng Wěi — 2026", "O'Brien & Sons", "👩"])
def test_printable_text_from_any_script_passes(text: str) -> None:
    assert check_text("title", text, 200) == text


def test_the_refusal_names_the_offending_code_point() -> None:
    with pytest.raises(InvalidInput, match="U\\+202E"):
        check_text("title", "abc\u202edef", 200)


@pytest.mark.parametrize(
    ("kind", "value"),
    [("department", "civil-affairs"), ("doc_type", "id-card"), ("service", "housing-subsidy")],
)
def test_known_identifiers_pass(kind: Any, value: str) -> None:
    assert check_known("field", kind, value) == value


@pytest.mark.parametrize(
    ("kind", "value"),
    [("department", "id-card"), ("doc_type", "civil-affairs"), ("service", "Public-Housing"),
     ("department", 7)],
)
def test_identifiers_of_another_kind_or_unknown_are_refused(kind: Any, value: object) -> None:
    with pytest.raises(InvalidInput) as error:
        check_known("field", kind, value)
    assert error.value.field == "field"
