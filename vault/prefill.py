"""反填: an application's form filled in from what the vault already knows — the attributes
of the documents attached to it, then the resident's earlier applications — each value
saying where it came from; what the resident or the clerk types in wins, and when it
differs from what was filled in, the filled-in value is kept beside it (the change is
recorded, not lost)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from policy.catalogue_entries import FormField

FormValue = dict[str, str]
"""``{"value", "source"}``, and for a value typed over a filled-in one, the filled-in
``replaced_value`` and ``replaced_source``; from a document, its ``document_id``."""


@dataclass(frozen=True)
class Attached:
    """A document an application attached, and the attributes it carries."""

    document_id: str
    attributes: Mapping[str, str]


@dataclass(frozen=True)
class EarlierForm:
    """The form of one of the resident's earlier applications."""

    number: str
    form: Mapping[str, Mapping[str, str]]


def fill_form(
    fields: Sequence[FormField],
    given: Mapping[str, str],
    given_by: str,
    attached: Mapping[str, Attached],
    earlier: Callable[[], Sequence[EarlierForm]],
) -> dict[str, FormValue]:
    """The form: for each field of the service, the value given (by ``given_by``:
    ``resident`` or ``clerk``), else the attribute of the attached document of the field's
    type (``attached``: by document type), else the newest earlier application's value of
    a field of that name (``earlier()``: newest first, asked for at most once, and only if
    a field needs it). A field with none of these is left out."""
    form: dict[str, FormValue] = {}
    asked: list[Sequence[EarlierForm]] = []

    def earlier_forms() -> Sequence[EarlierForm]:
        if not asked:
            asked.append(earlier())
        return asked[0]

    for field in fields:
        filled = _filled(field, attached, earlier_forms)
        typed = given.get(field.field)
        if typed is None:
            if filled is not None:
                form[field.field] = filled
            continue
        value: FormValue = {"value": typed, "source": given_by}
        if filled is not None and filled["value"] != typed:
            value["replaced_value"] = filled["value"]
            value["replaced_source"] = filled["source"]
        form[field.field] = value
    return form


def _filled(
    field: FormField, attached: Mapping[str, Attached],
    earlier: Callable[[], Sequence[EarlierForm]],
) -> FormValue | None:
    document = attached.get(field.doc_type)
    if document is not None:
        value = document.attributes.get(field.attribute)
        if isinstance(value, str) and value:
            return {"value": value, "source": field.source, "document_id": document.document_id}
    for application in earlier():
        before = application.form.get(field.field)
        if before is not None and isinstance(before.get("value"), str) and before["value"]:
            return {"value": before["value"], "source": f"application:{application.number}"}
    return None
