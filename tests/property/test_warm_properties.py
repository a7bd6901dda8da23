"""The batch thread's warm aggregates: after a refresh, whatever it holds is what a load from
the store gives at that moment, whatever was written in between and by whom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.wiring import Core
from policy.scales import Grade
from tests.support import MovableClock, memory_vault
from vault.consent import Consent
from vault.document import Document
from vault.ids import resident_aggregate_id
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate
from vault.resident import Resident
from vault.services.fetches import _held_with
from vault.store import Warm

RESIDENTS = ("r1", "r2")
ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证")

# Each step: a write somewhere else (through the store, as another thread or process would),
# a read through the warm cache, or a refresh.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("upload"), st.sampled_from(RESIDENTS)),
        st.tuples(st.just("grant"), st.sampled_from(RESIDENTS)),
        st.tuples(st.just("revoke"), st.sampled_from(RESIDENTS)),
        st.tuples(st.just("fetch"), st.sampled_from(RESIDENTS)),
        st.tuples(st.just("grade"), st.sampled_from(RESIDENTS)),
        st.tuples(st.just("erase"), st.sampled_from(RESIDENTS)),
        st.tuples(st.just("read"), st.integers(0, 30)),
        st.tuples(st.just("refresh"), st.just(0)),
    ),
    min_size=1,
    max_size=40,
)


def _state(aggregate: object) -> Any:
    """What a load would say of an aggregate: its class, version and every field."""
    if aggregate is None:
        return None
    return type(aggregate), sorted(
        (k, repr(v)) for k, v in vars(aggregate).items() if not k.startswith("_pending")
    )


def _ids(vault: Core) -> list[UUID]:
    """Every aggregate the log names (and one it never will)."""
    found: list[UUID] = []
    for n in vault.events.select_notifications(1, 100_000):
        if n.originator_id not in found:
            found.append(n.originator_id)
    return [*found, UUID(int=7)]


def _read(warm: Warm, vault: Core, aggregate_id: UUID) -> None:
    """A read through the warm cache as the fetch path makes it: a resident's document or
    consent only after the resident (the cache's contract: none is held without the
    resident, whose erasure drops them)."""
    found = vault.store.find(aggregate_id)
    if isinstance(found, Document | Consent):
        warm.get(resident_aggregate_id(found.resident_id))
    warm.get(aggregate_id)


class _World:
    def __init__(self) -> None:
        self.clock = MovableClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
        self.vault = memory_vault(self.clock)
        self.grades = 0

    def write(self, kind: str, resident_id: str) -> None:
        vault, now = self.vault, self.clock.now()
        self.clock.advance(timedelta(seconds=1))
        resident = vault.store.find(resident_aggregate_id(resident_id))
        if isinstance(resident, Resident) and resident.is_erased:
            return
        if kind == "upload":
            vault.documents.submit(resident_id, [b"card"], ID_CARD)
        elif kind == "grant":
            vault.consents.grant(resident_id, ConsentRequest(
                department="civil-affairs", doc_types=("id-card",),
                purpose="subsistence-allowance", valid_until=now + timedelta(days=30),
            ))
        elif kind == "revoke" and isinstance(resident, Resident):
            for consent_id in resident.consent_ids:
                consent = vault.store.find(consent_id)
                if isinstance(consent, Consent) and consent.revoked_at is None:
                    vault.consents.revoke(resident_id, consent_id)
                    return
        elif kind == "fetch" and isinstance(resident, Resident) and resident.document_ids:
            vault.fetches.submit(
                officer="officer-li", department="civil-affairs", resident_id=resident_id,
                document_id=resident.document_ids[-1], purpose="subsistence-allowance",
            ).exception()
        elif kind == "grade":
            self.grades += 1
            vault.residents.record_grades([GradeUpdate(
                resident_id=resident_id, grade=Grade.B, sequence=self.grades, effective_at=now,
            )])
        elif kind == "erase" and isinstance(resident, Resident):
            vault.residents.erase(resident_id)


@settings(max_examples=60, deadline=None)
@given(steps=steps)
def test_after_a_refresh_every_warm_aggregate_is_what_a_load_gives(
    steps: list[tuple[str, Any]],
) -> None:
    world = _World()
    vault = world.vault
    warm = Warm(vault.store, capacity=8, related=_held_with)
    for kind, arg in steps:
        if kind == "read":
            ids = _ids(vault)
            _read(warm, vault, ids[arg % len(ids)])
        elif kind == "refresh":
            warm.refresh()
        else:
            world.write(kind, arg)
    warm.refresh()
    for aggregate_id in _ids(vault):
        assert _state(warm.get(aggregate_id)) == _state(vault.store.find(aggregate_id))
    vault.close()


def test_an_erasure_drops_the_residents_documents_and_consents_with_it() -> None:
    world = _World()
    vault = world.vault
    world.write("upload", "r1")
    world.write("grant", "r1")
    resident = vault.store.find(resident_aggregate_id("r1"))
    assert isinstance(resident, Resident)
    [document_id], [consent_id] = resident.document_ids, resident.consent_ids
    warm = Warm(vault.store, capacity=100, related=_held_with)
    warm.refresh()
    held = [warm.get(i) for i in (resident.id, document_id, consent_id)]
    assert isinstance(held[1], Document)
    assert held[1].title == "居民身份证"  # opened with the resident's key
    vault.residents.erase("r1")
    warm.refresh()
    # The document's own events did not change, but what was held of it is gone: loaded
    # again, its personal fields are shredded.
    again = warm.get(document_id)
    assert again is not held[1]
    assert isinstance(again, Document)
    assert again.title != "居民身份证"
    vault.close()


def test_the_least_recently_used_go_first_and_a_flood_of_changes_forgets_everything() -> None:
    world = _World()
    vault = world.vault
    for _ in range(3):
        world.write("upload", "r1")
    resident = vault.store.find(resident_aggregate_id("r1"))
    assert isinstance(resident, Resident)
    a, b, c = resident.document_ids
    warm = Warm(vault.store, capacity=2)
    warm.refresh()
    first_a = warm.get(a)
    warm.get(b)
    assert warm.get(a) is first_a  # held: the same object
    warm.get(c)  # over capacity: b, the least recently used, goes
    assert warm.get(a) is first_a
    assert warm.get(b) is not None

    warm.CHANGES_PAGE, warm.MAX_CHANGES = 2, 4  # type: ignore[misc]
    held_a = warm.get(a)
    for _ in range(3):
        world.write("grant", "r2")  # 2 events each, none of them a's
    warm.refresh()
    assert warm.get(a) is not held_a  # more than MAX_CHANGES: everything forgotten
    vault.close()


def test_a_resident_that_makes_room_takes_its_documents_and_consents_with_it() -> None:
    world = _World()
    vault = world.vault
    world.write("upload", "r1")
    world.write("grant", "r1")
    world.write("upload", "r2")
    resident = vault.store.find(resident_aggregate_id("r1"))
    other = vault.store.find(resident_aggregate_id("r2"))
    assert isinstance(resident, Resident)
    assert isinstance(other, Resident)
    warm = Warm(vault.store, capacity=3, related=_held_with)
    warm.refresh()
    held = [warm.get(i) for i in (resident.id, *resident.document_ids, *resident.consent_ids)]
    # Over capacity: r1, the least recently used, goes, and its document and consent with
    # it, though they were used later.
    warm.get(other.id)
    assert warm.get(resident.document_ids[0]) is not held[1]
    assert warm.get(resident.consent_ids[0]) is not held[2]
