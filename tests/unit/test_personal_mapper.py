"""The personal-data mapper: personal fields sealed per owner, everything else in clear."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import MapperDeserialisationError
from eventsourcing.utils import get_topic

from adapters.mapper import PersonalDataMapper, stored_sealed_personal
from adapters.transcoding import stored_time_text
from keys.master import MasterKey, MasterKeys
from keys.resident_keys import ResidentKeys
from keys.secrets import open_personal_fields, personal_context
from tests.support import CountingKeyTable, memory_vault
from vault.document import Document
from vault.markers import ERASED, SEALED, Erased
from vault.resident import Resident


def _mapper() -> PersonalDataMapper:
    vault = memory_vault()
    mapper = vault.application.mapper
    assert isinstance(mapper, PersonalDataMapper)
    return mapper


def _revoked_event(resident_id: str = "r1") -> Document.Revoked:
    return Document.Revoked(
        originator_id=uuid.uuid4(),
        originator_version=2,
        timestamp=datetime.now(UTC),
        resident_id=resident_id,
        department="public-security",
        reason="张伟 moved away",
        at=datetime.now(UTC),
    )


def _state(stored: bytes) -> dict[str, object]:
    return dict(json.loads(stored))


def test_personal_fields_are_sealed_and_the_rest_stays_clear() -> None:
    mapper = _mapper()
    mapper.keys.create("r1")
    stored = mapper.to_stored_event(_revoked_event())
    state = _state(stored.state)
    assert "reason" not in state
    assert "张伟".encode() not in stored.state
    assert state["department"] == "public-security"
    assert state["resident_id"] == "r1"
    assert stored.topic == get_topic(Document.Revoked)
    restored = mapper.to_domain_event(stored)
    assert restored.reason == "张伟 moved away"  # type: ignore[attr-defined]


def test_after_shredding_personal_fields_read_as_erased() -> None:
    mapper = _mapper()
    mapper.keys.create("r1")
    stored = mapper.to_stored_event(_revoked_event())
    mapper.keys.shred("r1")
    restored = mapper.to_domain_event(stored)
    assert restored.reason is ERASED  # type: ignore[attr-defined]
    assert restored.department == "public-security"  # type: ignore[attr-defined]
    assert Erased() is ERASED
    assert not ERASED


def test_a_page_of_events_is_decoded_with_one_key_query() -> None:
    mapper = _mapper()
    table = CountingKeyTable()
    master = MasterKeys(MasterKey.generate())
    mapper.keys = ResidentKeys(table, master)
    for rid in ("r1", "r2", "r3"):
        mapper.keys.create(rid)
    stored = [mapper.to_stored_event(_revoked_event(rid)) for rid in ("r1", "r2", "r3", "r1")]
    mapper.keys.shred("r3")
    mapper.keys = ResidentKeys(table, master)  # nothing cached, as in a rebuild
    table.reads.clear()
    events = mapper.to_domain_events(stored)
    assert table.reads == [["r1", "r2", "r3"]]
    reasons = [e.reason for e in events]  # type: ignore[attr-defined]
    assert reasons == ["张伟 moved away", "张伟 moved away", ERASED, "张伟 moved away"]
    assert [e.originator_id for e in events] == [s.originator_id for s in stored]


def test_sealed_fields_moved_to_another_event_do_not_open() -> None:
    mapper = _mapper()
    mapper.keys.create("r1")
    stored = mapper.to_stored_event(_revoked_event())
    moved = replace(stored, originator_version=3)
    with pytest.raises(MapperDeserialisationError):
        mapper.to_domain_event(moved)


def test_altered_sealed_fields_do_not_open() -> None:
    mapper = _mapper()
    mapper.keys.create("r1")
    stored = mapper.to_stored_event(_revoked_event())
    state = _state(stored.state)
    sealed = str(state["personal"])
    state["personal"] = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(MapperDeserialisationError):
        mapper.to_domain_event(replace(stored, state=json.dumps(state).encode()))


def test_events_without_personal_fields_need_no_key() -> None:
    mapper = _mapper()
    resident = Resident(resident_id="no-key-was-ever-made", timestamp=datetime.now(UTC))
    registered = resident.collect_events()[0]
    stored = mapper.to_stored_event(registered)
    assert "personal" not in _state(stored.state)
    assert mapper.to_domain_event(stored) == registered


def test_a_reader_may_leave_personal_fields_sealed_and_needs_no_key() -> None:
    mapper = _mapper()
    table = CountingKeyTable()
    master = MasterKeys(MasterKey.generate())
    mapper.keys = ResidentKeys(table, master)
    mapper.keys.create("r1")
    sealed = mapper.to_stored_event(_revoked_event("r1"))
    unsealed = mapper.to_stored_event(_revoked_event("never-registered"))  # no key: not written
    mapper.keys = ResidentKeys(table, master)
    table.reads.clear()
    events = mapper.to_domain_events([sealed, unsealed], open_personal=False)
    assert table.reads == []
    assert [e.reason for e in events] == [SEALED, ERASED]  # type: ignore[attr-defined]
    assert events[0].department == "public-security"  # type: ignore[attr-defined]
    assert repr(SEALED) == "SEALED"


def test_a_stored_state_holds_the_fields_as_stored_with_the_personal_ones_sealed() -> None:
    mapper = _mapper()
    mapper.keys.create("r1")
    event = _revoked_event()
    stored = mapper.to_stored_event(event)
    [state] = mapper.to_stored_states([stored])
    assert state is not None
    assert state["department"] == "public-security"
    assert "reason" not in state
    assert stored_time_text(state["at"]) == event.at.isoformat()
    sealed = stored_sealed_personal(state)
    assert sealed is not None
    opened = open_personal_fields(
        mapper.keys.data_key("r1"),
        sealed,
        context=personal_context(stored.topic, event.originator_id, 2),
    )
    assert json.loads(opened) == {"reason": "张伟 moved away"}


def test_a_state_stored_at_an_older_class_version_is_left_to_the_upcasters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mapper = _mapper()
    stored = mapper.to_stored_event(_revoked_event())
    monkeypatch.setattr(Document.Revoked, "class_version", 2, raising=False)
    assert mapper.to_stored_states([stored]) == [None]


def test_a_stored_state_that_is_no_object_is_unreadable() -> None:
    mapper = _mapper()
    stored = replace(mapper.to_stored_event(_revoked_event()), state=b"[1, 2]")
    with pytest.raises(MapperDeserialisationError, match="not an object"):
        mapper.to_stored_states([stored])
    with pytest.raises(MapperDeserialisationError, match="not an object"):
        mapper.to_domain_events([stored])


def _filed_before_attributes(mapper: PersonalDataMapper, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A document's filing as version 1 of its event stored it: no attributes."""
    state = {
        "originator_id": uuid.uuid4(), "originator_version": 1, "timestamp": datetime.now(UTC),
        "originator_topic": get_topic(Document), "resident_id": "r1", "doc_type": "id-card",
        "title": "居民身份证", "filename": None, "content_type": "image/png", "size": 3,
        "content_sha256": "0" * 64, "blob_key": "k", "sealed_key": "s", "expires_at": None,
        "trust_level": "C", "issuer": None, "officer": None, "replaces": None,
    }
    event = object.__new__(Document.Submitted)
    object.__setattr__(event, "__dict__", state)
    with monkeypatch.context() as old:
        old.setattr(Document.Filed, "class_version", 1)
        old.setattr(Document.Filed, "personal_fields", ("title", "filename", "content_sha256"))
        stored = mapper.to_stored_event(event)  # type: ignore[arg-type]
    assert "class_version" not in _state(stored.state)
    return stored  # type: ignore[return-value]


def test_a_filing_stored_before_documents_had_attributes_reads_with_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mapper = _mapper()
    mapper.keys.create("r1")
    stored = _filed_before_attributes(mapper, monkeypatch)
    restored = mapper.to_domain_event(stored)  # type: ignore[arg-type]
    assert restored.attributes == {}  # type: ignore[attr-defined]
    assert restored.title == "居民身份证"  # type: ignore[attr-defined]
    document = restored.mutate(None)  # type: ignore[attr-defined]
    assert document.attributes == {}
    mapper.keys.shred("r1")
    assert mapper.to_domain_event(stored).attributes is ERASED  # type: ignore[arg-type, attr-defined]
    sealed = mapper.to_domain_events([stored], open_personal=False)  # type: ignore[list-item]
    assert sealed[0].attributes is SEALED  # type: ignore[attr-defined]
