"""Personal fields in events, sealed with the owner's key so erasure can shred them.

Event classes list their personal fields in ``personal_fields`` and carry the
owner's ``resident_id`` in clear. The mapper below seals those fields into one
``personal`` blob per event, bound to the event's topic, originator and
version. Topic, originator id, version and every other field stay readable,
so after erasure the log still replays and verifies, and the personal fields
read back as :data:`ERASED`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    Cipher,
    Compressor,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
)
from eventsourcing.utils import get_topic, resolve_topic

from adapters.transcoding import VaultTranscoder
from keys.errors import ResidentKeyShredded, UnknownResidentKey
from keys.secrets import open_personal_fields, personal_context, seal_personal_fields
from vault.markers import ERASED, SEALED
from vault.ports import DataKeys

_SEALED_KEY = "personal"


def stored_sealed_personal(state: dict[str, Any]) -> bytes | None:
    """The personal fields in a state read by :meth:`PersonalDataMapper.to_stored_states`,
    still sealed (under :func:`personal_context` of the event's topic, aggregate and
    version); None if none were (the owner had no key when the event was written)."""
    sealed: str | None = state.get(_SEALED_KEY)
    # binascii's decoder is b64decode's without its wrapper (a third of the time here).
    return None if sealed is None else binascii.a2b_base64(sealed)


class PersonalDataMapper(Mapper[UUID]):
    """A mapper that seals each event's personal fields with its owner's data key."""

    transcoder: VaultTranscoder

    def __init__(
        self,
        transcoder: VaultTranscoder,
        keys: DataKeys,
        compressor: Compressor | None = None,
        cipher: Cipher | None = None,
    ) -> None:
        super().__init__(transcoder=transcoder, compressor=compressor, cipher=cipher)
        self.keys = keys

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        cls = type(domain_event)
        topic = get_topic(cls)
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        personal: tuple[str, ...] = getattr(cls, "personal_fields", ())
        if personal:
            secret = {name: state.pop(name) for name in personal}
            try:
                key = self.keys.data_key(state["resident_id"])
            except (ResidentKeyShredded, UnknownResidentKey):
                # No key to seal with (the owner is erased, or was never registered, as
                # for a fetch naming an unknown resident): the fields are not written.
                state[_SEALED_KEY] = None
            else:
                sealed = seal_personal_fields(
                    key,
                    self.transcoder.encode(secret),
                    context=personal_context(topic, originator_id, originator_version),
                )
                state[_SEALED_KEY] = base64.b64encode(sealed).decode()
        data = self.transcoder.encode(state)
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=data,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        [event] = self.to_domain_events([stored_event])
        return event

    def to_domain_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        open_personal: bool = True,
    ) -> list[DomainEventProtocol[UUID]]:
        """Many stored events at once: their owners' keys are read in one go (one query
        for every key the cache lacks) before any personal field is opened. With
        ``open_personal=False`` nothing is decrypted: personal fields read as :data:`SEALED`
        (or :data:`ERASED` where nothing was sealed)."""
        decoded = [self._decode(stored) for stored in stored_events]
        keys: dict[str, bytes | None] = {}
        if open_personal:
            owners = {
                state["resident_id"]
                for _, _, state in decoded
                if state.get(_SEALED_KEY)
            }
            if owners:
                keys = self.keys.data_keys(owners)
        return [
            self._finish(stored, cls, originator_id, state, open_personal, keys)
            for stored, (cls, originator_id, state) in zip(stored_events, decoded, strict=True)
        ]

    def to_stored_states(
        self, stored_events: Sequence[StoredEvent]
    ) -> list[dict[str, Any] | None]:
        """Each event's state as stored, without building the event (most of the cost of
        replaying a log), for a reader that copies fields into text: ids and times in
        their stored form (:func:`~adapters.transcoding.stored_id_text`,
        :func:`~adapters.transcoding.stored_time_text`), personal fields still sealed
        (:func:`stored_sealed_personal`), no originator id or version (the stored event
        has them). None for an event stored at an older version of its class: only its
        upcasters read that, so decode it as an event."""
        states: list[dict[str, Any] | None] = []
        for stored in stored_events:
            state = self._state(stored, self.transcoder.decode_stored)
            current = getattr(resolve_topic(stored.topic), "class_version", 1)
            states.append(state if state.get("class_version", 1) == current else None)
        return states

    def _decode(self, stored_event: StoredEvent) -> tuple[type, UUID, dict[str, Any]]:
        cls = resolve_topic(stored_event.topic)
        originator_id = stored_event.originator_id
        if not isinstance(originator_id, UUID):
            originator_id = UUID(originator_id)
        return cls, originator_id, self._state(stored_event, self.transcoder.decode)

    def _state(
        self, stored_event: StoredEvent, decode: Callable[[bytes], Any]
    ) -> dict[str, Any]:
        try:
            data = stored_event.state
            if self.cipher:
                data = self.cipher.decrypt(data)
            if self.compressor:
                data = self.compressor.decompress(data)
            state = decode(data)
            if type(state) is not dict:
                raise TypeError(f"the state is a {type(state).__name__}, not an object")
        except Exception as e:
            raise _unreadable(stored_event, stored_event.originator_id, e) from e
        return state

    def _finish(
        self,
        stored_event: StoredEvent,
        cls: type,
        originator_id: UUID,
        state: dict[str, Any],
        open_personal: bool = True,
        keys: dict[str, bytes | None] | None = None,
    ) -> DomainEventProtocol[UUID]:
        if _SEALED_KEY in state and not open_personal:
            marker = SEALED if state.pop(_SEALED_KEY) else ERASED
            state.update(dict.fromkeys(getattr(cls, "personal_fields", ()), marker))
        elif _SEALED_KEY in state:
            try:
                state.update(
                    self._open_personal(
                        cls, state["resident_id"], state.pop(_SEALED_KEY), stored_event,
                        originator_id, (keys or {}).get(state["resident_id"]),
                    )
                )
            except Exception as e:
                raise _unreadable(stored_event, originator_id, e) from e
        state["originator_id"] = originator_id
        state["originator_version"] = stored_event.originator_version
        from_version = state.pop("class_version", 1)
        while from_version < getattr(cls, "class_version", 1):
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        event: DomainEventProtocol[UUID] = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    def _open_personal(
        self,
        cls: type,
        owner: str,
        sealed: str | None,
        stored_event: StoredEvent,
        originator_id: UUID,
        key: bytes | None = None,
    ) -> dict[str, Any]:
        """The sealed fields, opened with ``key`` (read with the page's other keys) or,
        without it, with the owner's key asked for now (it may have just expired from
        the cache, or the owner have none: erased, or never registered — an error)."""
        fields: tuple[str, ...] = getattr(cls, "personal_fields", ())
        if sealed is None:
            return dict.fromkeys(fields, ERASED)
        if key is None:
            try:
                key = self.keys.data_key(owner)
            except ResidentKeyShredded:
                return dict.fromkeys(fields, ERASED)
        plaintext = open_personal_fields(
            key,
            base64.b64decode(sealed),
            context=personal_context(
                stored_event.topic, originator_id, stored_event.originator_version
            ),
        )
        opened: dict[str, Any] = self.transcoder.decode(plaintext)
        return opened


def _unreadable(
    stored_event: StoredEvent, originator_id: UUID | str, error: Exception
) -> MapperDeserialisationError:
    return MapperDeserialisationError(
        f"cannot read stored event {stored_event.topic} "
        f"{originator_id} v{stored_event.originator_version}: {error}"
    )
