"""The vault's transcoder reads exactly what eventsourcing's JSON transcoder reads.

Stores written by the library's transcoder must read the same after the switch to the
vault's faster decoder: for any value the vault could store (nested dicts and lists of
strings, numbers, ids, times, decimals, and dicts that merely look like typed values),
both decoders give equal results, or both refuse.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import example, given
from hypothesis import strategies as st

from adapters.transcoding import (
    VaultTranscoder,
    stored_id_text,
    stored_time_text,
    uuid_from_hex,
)


def _registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY = _registered(JSONTranscoder())
VAULT = _registered(VaultTranscoder())

zones = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.uuids(),
    st.datetimes(timezones=zones),
    st.decimals(allow_nan=False, allow_infinity=False),
)
look_alikes = st.fixed_dictionaries(
    {"_type_": st.sampled_from(["uuid_hex", "datetime_iso", "decimal_str", "other"])},
    optional={"_data_": st.one_of(st.text(max_size=40), st.integers(), st.none())},
)
values = st.recursive(
    st.one_of(scalars, look_alikes),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _decoded(transcoder: JSONTranscoder, data: bytes) -> tuple[str, Any]:
    try:
        return "value", transcoder.decode(data)
    except Exception as e:  # what each refuses, and how, is compared by the caller
        return "refused", type(e).__name__


@given(values)
@example({"_type_": "uuid_hex", "_data_": "0x" + "a" * 30})
@example({"_type_": "uuid_hex", "_data_": "A" * 32})
@example({"_type_": "uuid_hex", "_data_": "+" + "1" * 31})
@example({"_type_": "uuid_hex"})
@example([{"nested": {"_type_": "datetime_iso", "_data_": "2026-11-27T07:00:00+08:00"}}])
def test_the_vault_decodes_what_the_library_encodes_exactly_as_the_library_does(
    value: Any,
) -> None:
    data = LIBRARY.encode(value)
    library, vault = _decoded(LIBRARY, data), _decoded(VAULT, data)
    assert vault == library  # equal values, or the same refusal
    if library[0] == "value":
        assert json.dumps(vault[1], default=repr) == json.dumps(library[1], default=repr)


@given(st.uuids())
def test_an_id_read_from_its_hex_is_the_same_id(uuid: UUID) -> None:
    read = uuid_from_hex(uuid.hex)
    assert read == uuid
    assert (read.int, read.hex, str(read), hash(read)) == (
        uuid.int, uuid.hex, str(uuid), hash(uuid)
    )
    assert read.is_safe == uuid.is_safe


@given(st.text(alphabet="0123456789abcdefABCDEFx+_- {}", min_size=30, max_size=38))
@example("-" + "1" * 31)
@example("0x" + "a" * 30)
@example(" " + "a" * 31)
@example("{" + "b" * 32 + "}")
def test_any_other_spelling_reads_as_uuid_reads_it_or_is_refused(text: str) -> None:
    try:
        expected: UUID | str = UUID(text)
    except ValueError:
        expected = "refused"
    try:
        read: UUID | str = uuid_from_hex(text)
    except ValueError:
        read = "refused"
    assert read == expected


def test_an_unknown_type_name_is_refused_as_the_library_refuses_it() -> None:
    data = b'{"_type_":"nope","_data_":"x"}'
    for transcoder in (LIBRARY, VAULT):
        with pytest.raises(TranscodingNotRegisteredError):
            transcoder.decode(data)


def test_decimals_and_times_come_back_typed() -> None:
    at = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    value = {"at": at, "amount": Decimal("1.10"), "ids": [UUID(int=7)]}
    assert VAULT.decode(LIBRARY.encode(value)) == value


@given(st.uuids())
def test_an_id_read_as_stored_is_the_ids_text(uuid: UUID) -> None:
    stored = VAULT.decode_stored(LIBRARY.encode({"id": uuid}))["id"]
    assert stored_id_text(stored) == str(uuid)
    assert stored_id_text(None) is None


@given(st.datetimes(timezones=zones))
def test_a_time_read_as_stored_is_its_iso_text(at: datetime) -> None:
    stored = VAULT.decode_stored(LIBRARY.encode({"at": at}))["at"]
    assert stored_time_text(stored) == at.isoformat()
    assert stored_time_text(None) is None


@pytest.mark.parametrize("reader", [stored_id_text, stored_time_text])
@pytest.mark.parametrize(
    "value",
    [
        "0" * 32,
        {"_type_": "decimal_str", "_data_": "1"},
        {"_type_": "uuid_hex", "_data_": 7},
        {"_type_": "datetime_iso", "_data_": 7},
        {"_type_": "uuid_hex", "_data_": "x" * 32},
        {"_type_": "uuid_hex", "_data_": "0" * 32, "extra": 1},
    ],
)
def test_a_stored_value_of_another_kind_is_refused(reader: Any, value: Any) -> None:
    with pytest.raises(ValueError, match="not a stored"):
        reader(value)
