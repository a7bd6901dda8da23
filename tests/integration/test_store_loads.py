"""Several aggregates loaded at once (``Store.find_all``), on SQLite and on PostgreSQL: each
as a load of its own would give it, and the cache kept as loads keep it. (That PostgreSQL
reads those the cache lacks in one query: ``test_postgres_recorder``.)"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from adapters.wiring import Services, open_services
from tests.support import MovableClock
from vault.document import Document, DocumentStatus
from vault.inputs import DocumentDetails
from vault.store import Store

ID_CARD = DocumentDetails(doc_type="id-card", title="居民身份证", content_type="image/png")
INCOME = DocumentDetails(doc_type="income-proof", title="收入证明", content_type="text/plain")


def _seen(aggregate: object) -> dict[str, Any]:
    """What a load gives, to compare two loads by."""
    return {"kind": type(aggregate), **vars(aggregate)}


def _documents(services: Services) -> list[UUID]:
    ids = [services.documents.submit("r1", [b"card"], ID_CARD).value.id,
           services.documents.submit("r1", [b"pay"], INCOME).value.id]
    withdrawn = services.documents.submit("r1", [b"old"], INCOME).value.id
    services.documents.withdraw("r1", withdrawn)
    return [*ids, withdrawn]


def test_each_comes_as_a_load_of_its_own_gives_it_and_none_for_an_unknown_id(
    services: Services,
) -> None:
    store = Store(services.application)
    ids = _documents(services)
    store.forget(*ids)
    unknown = uuid4()
    found = store.find_all([ids[2], unknown, ids[0], ids[1], ids[0]])
    assert list(found) == [ids[2], ids[0], ids[1]]  # asked order, once each, unknown left out
    store.forget(*ids)
    for document_id, document in found.items():
        assert _seen(document) == _seen(store.find(document_id))
    withdrawn = found[ids[2]]
    assert isinstance(withdrawn, Document)
    assert withdrawn.status is DocumentStatus.WITHDRAWN
    assert store.find_all([]) == {}


def test_what_it_loads_is_cached_and_a_change_to_what_it_hands_out_is_not(
    services: Services,
) -> None:
    store = Store(services.application)
    ids = _documents(services)
    store.forget(*ids)
    found = store.find_all(ids)
    cache = services.application.repository.cache
    assert cache is not None
    for document_id in ids:
        cache.get(document_id)  # there: no KeyError
    first = found[ids[0]]
    assert isinstance(first, Document)
    first.title = "changed by a step that did not save"
    again = store.find(ids[0])
    assert isinstance(again, Document)
    assert again.title == "居民身份证"


def test_a_cached_one_changed_by_another_process_comes_up_to_date(
    services: Services, clock: MovableClock
) -> None:
    store = Store(services.application)
    ids = _documents(services)
    store.find_all(ids)  # all cached here
    with open_services(services.settings, clock=clock) as elsewhere:
        elsewhere.documents.withdraw("r1", ids[0])
    store.forget(ids[1])  # one cached, one not
    found = store.find_all(ids[:2])
    first = found[ids[0]]
    assert isinstance(first, Document)
    assert first.status is DocumentStatus.WITHDRAWN
    assert _seen(found[ids[1]]) == _seen(store.find(ids[1]))
