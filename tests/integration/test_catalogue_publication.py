"""A published catalogue is an event, in force at once here and within a second in every
other process on the same store; the checks of every command follow it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.settings import Settings
from adapters.wiring import Services, open_services
from policy.catalogue import catalogue, shipped_catalogue, shipped_catalogue_text
from tests.support import MovableClock
from vault.errors import InvalidCatalogue, InvalidInput
from vault.inputs import ConsentRequest
from vault.publications import InForce, Publication
from vault.services.catalogues import CATALOGUE_REFRESH_SECONDS, Catalogues

NEW_TYPE = (
    '\n[[doc_type]]\nid = "pet-licence"\nname_zh = "犬类登记证"\nname_en = "Dog licence"\n'
)


def _consent_to(doc_type: str, clock: MovableClock) -> ConsentRequest:
    return ConsentRequest(
        "civil-affairs", (doc_type,), "subsistence-allowance",
        valid_until=clock.now() + timedelta(days=1),
    )


def test_a_published_catalogue_is_recorded_and_its_ids_are_accepted(
    services: Services, clock: MovableClock
) -> None:
    with pytest.raises(InvalidInput, match="no document type of the catalogue"):
        _consent_to("pet-licence", clock)
    assert services.catalogues.current() == shipped_catalogue()
    assert services.events.head() == 0  # the shipped catalogue needs no event
    published = services.catalogues.publish(shipped_catalogue_text() + NEW_TYPE)
    assert published.position == services.events.head()
    in_force = services.store.find(InForce.create_id(subject="catalogue"))
    assert isinstance(in_force, InForce)
    assert in_force.current == published.value == catalogue().version
    record = services.store.find(
        Publication.create_id(subject="catalogue", content_hash=published.value)
    )
    assert isinstance(record, Publication)
    assert record.text.endswith(NEW_TYPE)
    _consent_to("pet-licence", clock)  # known now
    again = services.catalogues.publish(shipped_catalogue_text() + NEW_TYPE)
    assert (again.value, again.position) == (published.value, None)  # nothing new to record


def test_a_bad_catalogue_changes_nothing(services: Services) -> None:
    with pytest.raises(InvalidCatalogue) as refused:
        services.catalogues.publish(shipped_catalogue_text() + "\n[[doc_type]]\nid = 1\n")
    assert refused.value.line is not None
    assert services.events.head() == 0
    assert services.catalogues.current() == shipped_catalogue()


def test_another_process_takes_up_a_published_catalogue_within_a_second(
    backend_settings: Settings, clock: MovableClock
) -> None:
    with open_services(backend_settings, clock=clock) as here, open_services(
        backend_settings, clock=clock
    ) as there:
        seconds = [0.0]
        there_catalogues = Catalogues(there.store, clock, monotonic=lambda: seconds[0])
        assert there_catalogues.current() == shipped_catalogue()
        version = here.catalogues.publish(shipped_catalogue_text() + NEW_TYPE).value
        seconds[0] = CATALOGUE_REFRESH_SECONDS
        assert there_catalogues.current().version == version
    with open_services(backend_settings, clock=clock) as later:
        assert later.catalogues.current().version == version  # and after a restart
