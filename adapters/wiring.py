"""Builds a running vault from settings: the event store, the key table, the blob store and
the signing keys, and over them the services (residents, documents, consents, fetches,
policies, catalogues, audit; applications over the read models), the read models and the
ledger, each given only what it uses."""

from __future__ import annotations

import sys
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlparse
from uuid import UUID

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from adapters.blobs_local import LocalBlobStore
from adapters.calendar_cn import ChineseCalendar
from adapters.eventstore import RecordedLog, VaultApplication
from adapters.keytable import SqlKeyTable
from adapters.notices import PdfNotices
from adapters.settings import Settings
from adapters.sql import SCHEMA_LOCK, Database, LogWakeups
from keys.errors import BadMasterKey
from keys.master import MasterKey, MasterKeys, load_or_create_key_file
from keys.receipts import ConsentTerms, sign_consent_receipt
from keys.resident_keys import ResidentKeys
from keys.signing import SigningKeys
from projections.ledger import Ledger
from projections.queries import Views
from projections.runner import ViewRunner
from vault.ports import BlobStore, Clock, DataKeys, ReceiptSigner, SystemClock
from vault.services.applications import Applications
from vault.services.audit import Audit
from vault.services.catalogues import Catalogues
from vault.services.consents import Consents
from vault.services.documents import DEFAULT_MAX_DOCUMENT_BYTES, Documents
from vault.services.fetches import Fetches
from vault.services.policies import Policies
from vault.services.residents import Residents
from vault.store import Store

# Imported by eventsourcing only when PostgreSQL is configured (psycopg is an optional extra).
POSTGRES_FACTORY_TOPIC = "adapters.postgres_recorder:VaultPostgresFactory"
POSTGRES_RECORDER_TOPIC = "adapters.postgres_recorder:OrderedPostgresApplicationRecorder"
SQLITE_RECORDER_TOPIC = "adapters.sqlite_recorder:SQLiteRecorder"


@dataclass
class Core:
    """The services over one event store, each given only the ports it uses."""

    clock: Clock
    store: Store
    events: RecordedLog
    residents: Residents
    documents: Documents
    consents: Consents
    fetches: Fetches
    policies: Policies
    catalogues: Catalogues
    audit: Audit
    application: VaultApplication
    keys: DataKeys
    blobs: BlobStore

    def close(self) -> None:
        """Serve the fetches already asked for, then close the store (closing twice is
        harmless)."""
        self.fetches.close()
        self.store.close()


def compose(
    factory: InfrastructureFactory[Any],
    keys: DataKeys,
    blobs: BlobStore,
    sign_receipt: ReceiptSigner,
    *,
    clock: Clock | None = None,
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
) -> Core:
    """The services over an event store made by ``factory``."""
    clock = clock or SystemClock()
    application = VaultApplication(factory, keys)
    store = Store(application)
    events = application.event_log()
    residents = Residents(store, keys, clock)
    policies = Policies(store, residents, clock)
    catalogues = Catalogues(store, clock)
    documents = Documents(
        store, residents, policies, keys, blobs, events, clock,
        max_document_bytes=max_document_bytes,
    )
    return Core(
        clock=clock,
        store=store,
        events=events,
        residents=residents,
        documents=documents,
        consents=Consents(store, residents, clock, sign_receipt),
        fetches=Fetches(store, policies, documents, clock),
        policies=policies,
        catalogues=catalogues,
        audit=Audit(store, policies, catalogues, events, keys),
        application=application,
        keys=keys,
        blobs=blobs,
    )


@dataclass
class Services(Core):
    """What one process holds: the services, the read models, the ledger, and the pieces the
    CLI needs directly. A context manager: leaving it closes everything."""

    settings: Settings
    applications: Applications
    views: Views
    view_runner: ViewRunner
    database: Database
    """The event store's database, where the read models, the ledger and the pages'
    sessions keep their tables."""
    ledger: Ledger
    key_table: SqlKeyTable
    master: MasterKeys
    signing: SigningKeys

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Connect to the configured stores and compose the services over them."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    master = master_keys(settings)
    factory = InfrastructureFactory.construct(Environment("Vault", event_store_env(settings)))
    key_table = SqlKeyTable.for_factory(factory)
    keys = ResidentKeys(key_table, master, cache_seconds=settings.key_cache_seconds)
    signing = SigningKeys(key_table, master)
    blobs = blob_store(settings)

    def sign_receipt(terms: ConsentTerms) -> str:
        return sign_consent_receipt(signing.current("receipts"), terms)

    def sign_checkpoint(message: bytes) -> tuple[str, bytes]:
        key = signing.current("checkpoints")
        return key.kid, key.private_key.sign(message)

    core = compose(
        factory, keys, blobs, sign_receipt,
        clock=clock, max_document_bytes=settings.max_document_bytes,
    )
    database = Database(factory.datastore)  # type: ignore[attr-defined]
    ledger = Ledger(
        core.events,
        database,
        sign_checkpoint,
        checkpoint_events=settings.checkpoint_events,
        checkpoint_seconds=settings.checkpoint_seconds,
        now=core.clock.now,
    )
    channel = core.application.notify_channel()
    view_runner = ViewRunner(
        core.events,
        keys,
        database,
        core.application.log_table(),
        lambda: LogWakeups(database, channel),
        ledger=ledger,
        now=core.clock.now,
    )
    views = Views(database, keys)
    applications = Applications(
        core.store, core.residents, core.documents, core.policies, core.catalogues,
        ViewsLibrary(views), PdfNotices(), sign_receipt, ChineseCalendar(), core.clock,
    )
    return Services(
        **vars(core),
        settings=settings,
        applications=applications,
        views=views,
        view_runner=view_runner,
        database=database,
        ledger=ledger,
        key_table=key_table,
        master=master,
        signing=signing,
    )


class ViewsLibrary:
    """The resident's current documents of a type and their applications, newest first,
    from the read models (the application service reads each from its events)."""

    def __init__(self, views: Views) -> None:
        self._views = views

    def current_documents(
        self, resident_id: str, doc_types: Set[str]
    ) -> dict[str, list[UUID]]:
        found = self._views.current_documents(resident_id, doc_types, per_type=20)
        return {doc_type: [UUID(i) for i in ids] for doc_type, ids in found.items()}

    def applications(self, resident_id: str) -> list[UUID]:
        """The resident's ten newest applications: enough to fill a form from."""
        return [UUID(e.application_id) for e in self._views.applications(resident_id, limit=10)]


def event_store_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing environment for the configured database."""
    # Cached aggregates are fast-forwarded with the events stored since (one query), so reads
    # stay strongly consistent while a consent used thousands of times is not replayed whole.
    cache = (
        {"AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size)}
        if settings.aggregate_cache_size
        else {}
    )
    if not settings.database_url:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": SQLITE_RECORDER_TOPIC,
            **cache,
        }
    url = urlparse(settings.database_url)
    schema = parse_qs(url.query).get("schema", [""])[0]
    if schema:
        ensure_postgres_schema(settings.database_url, schema)
    return {
        "PERSISTENCE_MODULE": POSTGRES_FACTORY_TOPIC,
        "POSTGRES_DBNAME": unquote(url.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_pool_size * 2),
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_LOCK_TIMEOUT": "10",
        # One round trip per save, with the table lock that keeps notification ids in order.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
        "APPLICATION_RECORDER_TOPIC": POSTGRES_RECORDER_TOPIC,
        **cache,
    }


def ensure_postgres_schema(database_url: str, schema: str) -> None:
    from psycopg import sql  # the postgres extra

    with _connected(database_url) as conn, conn.transaction():
        # Two processes started at once: CREATE … IF NOT EXISTS is not safe against a
        # concurrent one, so each waits for the other (adapters.sql.SCHEMA_LOCK).
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def _connected(database_url: str) -> Any:
    """A connection of its own to the configured PostgreSQL, in autocommit."""
    import psycopg  # the postgres extra

    url = urlparse(database_url)
    return psycopg.connect(
        dbname=unquote(url.path.lstrip("/")) or "postgres",
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=unquote(url.username or "postgres"),
        password=unquote(url.password or ""),
        autocommit=True,
        connect_timeout=10,
    )


def blob_store(settings: Settings) -> BlobStore:
    if not settings.s3_endpoint:
        return LocalBlobStore(settings.blob_dir)
    from adapters.blobs_s3 import S3BlobStore  # the s3 extra

    return S3BlobStore.connect(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key.get_secret_value(),
        settings.s3_bucket,
        secure=settings.s3_secure,
    )


class MasterKeyRequired(BadMasterKey):
    """A shared database needs the master key from the environment, not a local file."""


def master_keys(settings: Settings) -> MasterKeys:
    """The master key ring: from the environment, or the key file on the embedded default.

    The ring holds the current key (it wraps new keys) and any key a rotation
    still needs to read: ``CIVICVAULT_PREVIOUS_MASTER_KEY`` and
    ``CIVICVAULT_NEW_MASTER_KEY``, or ``master.key.previous`` and
    ``master.key.next`` beside the key file.
    """
    if settings.master_key is not None:
        current = MasterKey.from_base64(settings.master_key.get_secret_value())
        previous = tuple(
            MasterKey.from_base64(s.get_secret_value())
            for s in (settings.previous_master_key, settings.new_master_key)
            if s is not None
        )
        return MasterKeys(current, previous)
    if settings.database_url:
        raise MasterKeyRequired(
            "CIVICVAULT_MASTER_KEY must be set when CIVICVAULT_DATABASE_URL is: every replica "
            "needs the same master key"
        )
    path = settings.master_key_file
    current, created = load_or_create_key_file(path)
    if created:
        print(
            f"civicvault: WARNING: created a new master key at {path} (mode 0600). "
            "Anyone with this file and the database can read every document; "
            "set CIVICVAULT_MASTER_KEY from a secret store in production.",
            file=sys.stderr,
        )
    others = (next_key_file(settings), previous_key_file(settings))
    return MasterKeys(
        current, tuple(MasterKey.from_base64(p.read_text()) for p in others if p.exists())
    )


def next_key_file(settings: Settings) -> Path:
    """Where a rotation writes the new key before re-wrapping (so an interrupted one resumes)."""
    return settings.master_key_file.with_name(settings.master_key_file.name + ".next")


def previous_key_file(settings: Settings) -> Path:
    """Where a rotation keeps the old key until ``keys retire-previous`` finds nothing uses it."""
    return settings.master_key_file.with_name(settings.master_key_file.name + ".previous")


def describe(settings: Settings) -> dict[str, Any]:
    """Where this process keeps things, for people (no secrets)."""
    return {
        "database": "postgresql" if settings.database_url else str(settings.sqlite_path),
        "blobs": f"s3://{settings.s3_endpoint}/{settings.s3_bucket}"
        if settings.s3_endpoint
        else str(settings.blob_dir),
        "master_key": "environment" if settings.master_key else str(settings.master_key_file),
    }
