"""The vault's JSON transcoder: eventsourcing's format, read back with less work.

Stored events keep exactly the format of eventsourcing's :class:`JSONTranscoder`, which
still encodes them (``{"_type_": "uuid_hex", "_data_": "…"}`` for an id,
``datetime_iso`` for a time, and so on), so stores written before and after read the same.
Only decoding changes, because replaying the log is dominated by it
(``bench/readjudicate.py``, ``bench/projections.py``):

- the JSON text is parsed by ``orjson`` into plain values, and the typed values are then
  revived in one walk, instead of the standard parser calling back into Python for every
  object it builds;
- ids and times, by far the most common typed values, are built directly, and an id's 32
  hex digits become a :class:`UUID` without the parsing that :class:`UUID`'s constructor
  does for every spelling it accepts.

A reader that only copies a few fields into text (the read models, replaying the whole
log) can skip building values at all: :meth:`VaultTranscoder.decode_stored` leaves typed
values in their stored form, and :func:`stored_id_text` and :func:`stored_time_text` read
the two common ones as text.

What the library's decoder accepts this one accepts too, with the same result, except
JSON that ``orjson`` refuses and the standard module tolerates (``NaN``, integers beyond
64 bits, lone surrogate escapes): the vault never writes those, so a record holding one
was not written by it, and reads as undecodable.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Final
from uuid import UUID, SafeUUID

import orjson
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError

_HEX32: Final = re.compile(r"[0-9a-f]{32}")
_new = object.__new__
_set = object.__setattr__
_UNKNOWN: Final = SafeUUID.unknown


def uuid_from_hex(text: str) -> UUID:
    """The :class:`UUID` written as 32 lower-case hex digits (``UUID.hex``); any other
    spelling goes through :class:`UUID`'s own parser, which also rejects what is no id."""
    if _HEX32.fullmatch(text) is None:
        return UUID(text)
    uuid = _new(UUID)
    _set(uuid, "int", int(text, 16))
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid


def stored_id_text(value: Any) -> str | None:
    """An id in its stored form (``{"_type_": "uuid_hex", "_data_": …}``) as the text
    ``str(UUID)`` gives; None for None. ValueError for anything else."""
    if value is None:
        return None
    try:
        return _id_text(_stored_data(value, "uuid_hex"))
    except ValueError:
        raise ValueError(f"not a stored uuid_hex value: {value!r}") from None


@lru_cache(maxsize=1 << 16)
def _id_text(text: str) -> str:
    """32 hex digits (or any other spelling :class:`UUID` reads) as ``str(UUID)`` writes
    them. Remembered: a log names the same documents and consents again and again
    (in a million events, about 17,000 ids in 740,000 references)."""
    if _HEX32.fullmatch(text) is None:
        return str(UUID(text))
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def stored_time_text(value: Any) -> str | None:
    """A time in its stored form (``{"_type_": "datetime_iso", "_data_": …}``) as the ISO
    text :meth:`datetime.isoformat` wrote (not checked further); None for None.
    ValueError for anything else."""
    if value is None:
        return None
    return _stored_data(value, "datetime_iso")


def _stored_data(value: Any, name: str) -> str:
    if type(value) is dict and len(value) == 2 and value.get("_type_") == name:
        data = value.get("_data_")
        if type(data) is str:
            return data
    raise ValueError(f"not a stored {name} value: {value!r}")


class VaultTranscoder(JSONTranscoder):
    """eventsourcing's JSON transcoder, decoding with ``orjson`` and a short path for ids
    and times."""

    def decode_stored(self, data: bytes) -> Any:
        """The JSON, with typed values left in their stored form (read ids and times with
        :func:`stored_id_text` and :func:`stored_time_text`)."""
        return orjson.loads(data)

    def decode(self, data: bytes) -> Any:
        value = orjson.loads(data)
        kind = type(value)
        if kind is dict:
            return self._revive_dict(value)
        if kind is list:
            self._revive_list(value)
        return value

    def _revive_dict(self, value: dict[str, Any]) -> Any:
        """The dict with its typed values decoded, or the typed value it stands for."""
        for key, item in value.items():
            kind = type(item)
            if kind is dict:
                value[key] = self._revive_item(item)
            elif kind is list:
                self._revive_list(item)
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            return self._typed(value["_type_"], value["_data_"])
        return value

    def _revive_list(self, items: list[Any]) -> None:
        for index, item in enumerate(items):
            kind = type(item)
            if kind is dict:
                items[index] = self._revive_item(item)
            elif kind is list:
                self._revive_list(item)

    def _revive_item(self, item: dict[str, Any]) -> Any:
        # The common case first, without a walk: a typed value whose data is a string
        # (an id, a time) holds nothing further to revive.
        if len(item) == 2:
            data = item.get("_data_")
            if type(data) is str:
                name = item.get("_type_")
                if name == "uuid_hex":
                    return uuid_from_hex(data)
                if name == "datetime_iso":
                    return datetime.fromisoformat(data)
                if name is not None:
                    return self._typed(name, data)
        return self._revive_dict(item)

    def _typed(self, name: Any, data: Any) -> Any:
        try:
            transcoding = self.names[name]
        except (KeyError, TypeError) as e:
            msg = f"Data serialized with name {name!r} is not deserializable."
            raise TranscodingNotRegisteredError(msg) from e
        return transcoding.decode(data)
