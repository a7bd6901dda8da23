"""The SQL key table on SQLite and PostgreSQL: beside the events, never in the event log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from adapters.settings import Settings
from adapters.wiring import Services, open_services
from keys.master import MasterKey, MasterKeys
from keys.resident_keys import rotate_master
from keys.signing import SigningKeys
from keys.store import SigningKeyRecord
from tests.support import MovableClock, read_document
from vault.inputs import DocumentDetails

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def test_resident_key_is_inserted_once(services: Services) -> None:
    table = services.key_table
    assert table.add_resident_key("r1", b"wrapped-1", "m1", NOW)
    assert not table.add_resident_key("r1", b"wrapped-2", "m1", NOW)
    row = table.resident_key("r1")
    assert row is not None
    assert (row.wrapped, row.master_key_id, row.shredded_at) == (b"wrapped-1", "m1", None)
    assert table.resident_key("r2") is None


def test_shredding_keeps_a_tombstone_without_the_key(services: Services) -> None:
    table = services.key_table
    table.add_resident_key("r1", b"wrapped", "m1", NOW)
    table.shred_resident_key("r1", NOW)
    table.shred_resident_key("never-had-one", NOW)
    for resident_id in ("r1", "never-had-one"):
        row = table.resident_key(resident_id)
        assert row is not None
        assert row.wrapped is None
        assert row.shredded_at == NOW


def test_keys_are_not_in_the_event_log(services: Services) -> None:
    services.residents.register("r1")
    wrapped = services.key_table.resident_key("r1")
    assert wrapped is not None
    assert wrapped.wrapped is not None
    stored = b"".join(n.state for n in services.events.select_notifications(1, 100))
    assert wrapped.wrapped not in stored


def test_shredded_key_bytes_leave_the_sqlite_files(tmp_path: Path) -> None:
    services = open_services(
        Settings(data_dir=tmp_path, master_key=MasterKey.generate().to_base64()),
        clock=MovableClock(),
    )
    try:
        services.residents.register("r1")
        row = services.key_table.resident_key("r1")
        assert row is not None
        assert row.wrapped is not None
        files = sorted(tmp_path.glob("vault.sqlite3*"))
        assert any(row.wrapped in path.read_bytes() for path in files)
        services.residents.erase("r1")
        assert all(row.wrapped not in path.read_bytes() for path in files if path.exists())
    finally:
        services.close()


def test_signing_keys_in_creation_order_and_retirement(services: Services) -> None:
    table = services.key_table
    for n in range(2):
        table.add_signing_key(
            SigningKeyRecord(f"k{n}", "tokens", b"pub", b"priv", "m1", NOW.replace(hour=n), None)
        )
    table.retire_signing_key("k0", NOW)
    keys = table.signing_keys("tokens")
    assert [k.kid for k in keys] == ["k0", "k1"]
    assert keys[0].retired_at == NOW
    assert keys[1].retired_at is None
    assert table.signing_keys("receipts") == []


def test_master_rotation_rewraps_everything_in_the_database(
    services: Services, clock: MovableClock
) -> None:
    services.residents.register("r1")
    services.residents.register("r2")
    document = services.documents.submit(
        "r1", [b"content"], DocumentDetails("id-card", "card")
    ).value
    services.signing.current("receipts")
    new = MasterKey.generate()
    assert services.key_table.count_wrapped() == 3
    assert rotate_master(services.key_table, services.master, new) == 3
    # A process that holds only the new master key, with no key cached from before.
    only_new = services.settings.model_copy(
        update={"master_key": SecretStr(new.to_base64()), "key_cache_seconds": 0}
    )
    with open_services(only_new, clock=clock) as rotated:
        assert b"".join(read_document(rotated, "r1", document.id)) == b"content"
    assert SigningKeys(services.key_table, MasterKeys(new)).current("receipts")


def test_reading_a_key_keeps_the_connections_prepared_statements(
    postgres_schema_url: str,
) -> None:
    """A key is read on nearly every operation. psycopg forgets what it has prepared on a
    connection when a ROLLBACK passes through it, so a key read in a read-only transaction
    made the event store's next statements be planned afresh: the read goes without one."""
    from urllib.parse import parse_qs, urlparse

    from eventsourcing.postgres import PostgresDatastore

    from adapters.keytable import SqlKeyTable

    url = urlparse(postgres_schema_url)
    datastore = PostgresDatastore(
        url.path.lstrip("/"), url.hostname or "", url.port or 5432, url.username or "", "",
        schema=parse_qs(url.query)["schema"][0], pool_size=1, max_overflow=0,
    )
    try:
        with datastore.get_connection() as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{datastore.schema}"')
        table = SqlKeyTable(datastore)
        table.add_resident_key("r1", b"wrapped", "m1", NOW)

        def prepared() -> int:
            with datastore.get_connection() as conn:  # the pool's only connection
                for _ in range(6):  # psycopg prepares a statement on its fifth run
                    conn.execute("SELECT 1 WHERE %s", (True,))
                return _prepared_here(conn)

        assert prepared() >= 1
        assert table.resident_key("r1") is not None
        assert len(table.resident_keys(["r1", "r2"])) == 1
        with datastore.get_connection() as conn:
            assert _prepared_here(conn) >= 1
    finally:
        datastore.close()


def _prepared_here(conn: Any) -> int:
    """How many statements the connection's session holds prepared on the server."""
    row = conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()
    assert row is not None
    return int(row["n"])
