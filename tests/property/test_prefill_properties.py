"""反填: whatever the documents, earlier applications and typed values, each field's value
comes from the first source that has one — typed, then the attached document's attribute,
then the newest earlier application — says which, and a typed value that differs from
the filled-in one keeps that one beside it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from policy.catalogue_entries import FormField
from vault.prefill import Attached, EarlierForm, fill_form

FIELDS = [
    FormField("name", "姓名", "Name", "id-card", "name"),
    FormField("id_number", "身份证号码", "ID number", "id-card", "number"),
    FormField("address", "地址", "Address", "household-register", "address"),
    FormField("monthly_income", "月收入", "Monthly income", "income-proof", "monthly_income"),
]
ATTRIBUTES = {"id-card": ["name", "number"], "household-register": ["address"],
              "income-proof": ["monthly_income"]}
values = st.sampled_from(["张伟", "王芳", "3200", "和平里1号", ""])

attached = st.dictionaries(
    st.sampled_from(sorted(ATTRIBUTES)),
    st.builds(lambda i, a: (i, a), st.uuids().map(str),
              st.dictionaries(st.sampled_from(["name", "number", "address", "monthly_income",
                                               "other"]), values)),
)
earlier = st.lists(
    st.tuples(st.text("0123456789ABCDEF", min_size=6, max_size=6),
              st.dictionaries(st.sampled_from([f.field for f in FIELDS]), values)),
    max_size=3,
)
typed = st.dictionaries(st.sampled_from([f.field for f in FIELDS]), values.filter(bool))


@given(attached=attached, earlier=earlier, typed=typed,
       given_by=st.sampled_from(["resident", "clerk"]))
def test_each_value_comes_from_the_first_source_that_has_one(
    attached: dict[str, tuple[str, dict[str, str]]],
    earlier: list[tuple[str, dict[str, str]]],
    typed: dict[str, str],
    given_by: str,
) -> None:
    documents = {t: Attached(i, a) for t, (i, a) in attached.items()}
    forms = [EarlierForm(n, {k: {"value": v, "source": "resident"} for k, v in f.items()})
             for n, f in earlier]
    asked: list[int] = []

    def earlier_forms() -> list[EarlierForm]:
        asked.append(1)
        return forms

    form = fill_form(FIELDS, typed, given_by, documents, earlier_forms)
    # The earlier applications are read at most once, and only when a document leaves a
    # field unsaid.
    needed = any(not documents.get(f.doc_type, Attached("", {})).attributes.get(f.attribute)
                 for f in FIELDS)
    assert len(asked) == (1 if needed else 0)
    for field in FIELDS:
        expected: dict[str, Any] | None = None
        document = documents.get(field.doc_type)
        if document is not None and document.attributes.get(field.attribute):
            expected = {"value": document.attributes[field.attribute],
                        "source": f"{field.doc_type}.{field.attribute}",
                        "document_id": document.document_id}
        else:
            for number, before in earlier:
                if before.get(field.field):
                    expected = {"value": before[field.field], "source": f"application:{number}"}
                    break
        if field.field in typed:
            value = {"value": typed[field.field], "source": given_by}
            if expected is not None and expected["value"] != typed[field.field]:
                value |= {"replaced_value": expected["value"],
                          "replaced_source": expected["source"]}
            assert form[field.field] == value
        elif expected is None:
            assert field.field not in form
        else:
            assert form[field.field] == expected
    assert set(form) <= {f.field for f in FIELDS}
