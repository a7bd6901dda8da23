"""The catalogue in force: published as events, and the one every identifier is checked
against in this process (``policy.catalogue.catalogue()``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from policy.catalogue import (
    Catalogue,
    CatalogueError,
    parse_catalogue,
    put_in_force,
    shipped_catalogue,
)
from vault.errors import InvalidCatalogue
from vault.ports import Clock
from vault.publications import InForce, Publication
from vault.store import Store, Written

CATALOGUE_REFRESH_SECONDS = 1.0
"""How soon a catalogue published by another process takes effect here."""


class Catalogues:
    def __init__(
        self, store: Store, clock: Clock, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        """``monotonic`` (seconds) says when the catalogue in force is due to be read
        again; a test moves it instead of waiting."""
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._in_force: Catalogue | None = None

    def publish(self, text: str) -> Written[str]:
        """Check, record and put in force a catalogue file; returns its version (content
        hash). A bad file is refused with its first bad line and changes nothing."""
        try:
            found = parse_catalogue(text)
        except CatalogueError as e:
            raise InvalidCatalogue(e.line, e.reason) from None

        def publish() -> int | None:
            published = self._store.find(
                Publication.create_id(subject="catalogue", content_hash=found.version)
            )
            in_force = self._in_force_record()
            now = self._clock.now()
            changed: list[Publication | InForce] = []
            if published is None:
                changed.append(Publication(
                    subject="catalogue", content_hash=found.version, text=text,
                    published_at=now, timestamp=now,
                ))
            in_force = in_force or InForce(subject="catalogue", timestamp=now)
            in_force.activate(found.version, now)
            changed.append(in_force)
            return self._store.save(*changed)

        position = self._store.retrying(publish)
        self._put_in_force(found)
        return Written(found.version, position)

    def stale(self) -> bool:
        """Whether :meth:`current` would read the store again (cheap; no I/O)."""
        read_at = self._read_at
        return read_at is None or self._monotonic() - read_at >= CATALOGUE_REFRESH_SECONDS

    def current(self) -> Catalogue:
        """The catalogue in force, read again at most every second (another process may
        have published one): the last one published, or the shipped one if none was."""
        if self._in_force is not None and not self.stale():
            return self._in_force
        record = self._in_force_record()
        if record is None or record.current is None:
            self._put_in_force(shipped_catalogue())
        else:
            in_force = self._in_force
            if in_force is None or in_force.version != record.current:
                published = self._store.find(
                    Publication.create_id(subject="catalogue", content_hash=record.current)
                )
                assert isinstance(published, Publication), record.current
                self._put_in_force(parse_catalogue(published.text))
            else:
                self._read_at = self._monotonic()
        assert self._in_force is not None
        return self._in_force

    def version(self, version: str) -> Catalogue | None:
        """The catalogue of a version: the shipped one, or one published; None if neither."""
        shipped = shipped_catalogue()
        if version == shipped.version:
            return shipped
        published = self._store.find(
            Publication.create_id(subject="catalogue", content_hash=version)
        )
        return parse_catalogue(published.text) if isinstance(published, Publication) else None

    def _in_force_record(self) -> InForce | None:
        found = self._store.find(InForce.create_id(subject="catalogue"))
        return found if isinstance(found, InForce) else None

    def _put_in_force(self, found: Catalogue) -> None:
        with self._lock:
            self._in_force = found
            self._read_at = self._monotonic()
        put_in_force(found)
