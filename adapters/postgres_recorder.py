"""PostgreSQL event recorder: one round trip per save, notification ids still in commit order.

eventsourcing's default PostgreSQL insert sends ``SET LOCAL lock_timeout``,
``LOCK TABLE … IN EXCLUSIVE MODE``, ``NOTIFY`` and the ``INSERT`` in a pipeline
and then a separate ``COMMIT``: two round trips. Its optional database function
makes it one round trip but leaves out the table lock, so two writers could
commit notification ids out of order and a reader following the log could skip
one. This recorder installs the function *with* the lock, and so keeps the
library's ordering guarantee at one round trip per save.

It also numbers the events itself, one past the highest id, under that lock,
instead of drawing from the column's sequence: a sequence is not rolled back, so
every failed save (an optimistic-concurrency conflict, say) would leave a gap,
and the ledger needs event N to be leaf N - 1 with no gaps, so that a missing
number can only mean a deleted event.

And it reads the log in PostgreSQL's binary format, as plain tuples: the library
reads it as text, so every stored state crosses as hex that the server writes and the
client parses back, into a dict per row. Over a million events that halves the
reader's CPU (``bench/readjudicate.py``, ``bench/projections.py`` read this way).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from adapters.sql import SCHEMA_LOCK, from_snapshot_statement, quoted, split_snapshot
from projections.database import LogTable


def made_under_lock(datastore: PostgresDatastore, make: Callable[[], None]) -> None:
    """Run a recorder's table making while any other process making tables waits: the
    library's ``CREATE … IF NOT EXISTS`` statements and types (made in transactions of
    their own) are not safe against a concurrent maker, so two processes started at once on
    a new database could fail one of them. The lock (:data:`adapters.sql.SCHEMA_LOCK`) is
    held on a connection of its own for the whole of it."""
    with datastore.get_connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            make()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


class LockedPostgresAggregateRecorder(PostgresAggregateRecorder):
    """The library's recorder of an aggregate table (the residents' snapshots), making its
    table under the schema lock."""

    def create_table(self) -> None:
        made_under_lock(self.datastore, super().create_table)


class VaultPostgresFactory(PostgresFactory):
    """The library's factory, whose snapshot store makes its table under the schema lock
    (the application recorder is chosen by topic: :class:`OrderedPostgresApplicationRecorder`)."""

    aggregate_recorder_class = LockedPostgresAggregateRecorder


class OrderedPostgresApplicationRecorder(PostgresApplicationRecorder):
    """Inserts events through a database function that takes the table lock first."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.pg_function_name_insert_events = (
            f"civicvault_insert_events_{self.datastore.originator_id_type}"
        )
        self.sql_invoke_pg_function_insert_events = SQL(
            "SELECT * FROM {schema}.{insert_events}((%s))"
        ).format(
            schema=Identifier(self.datastore.schema),
            insert_events=Identifier(self.pg_function_name_insert_events),
        )
        self.sql_create_pg_function_insert_events = SQL(
            "CREATE OR REPLACE FUNCTION "
            "{schema}.{insert_events}(events {schema}.{event}[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
            "BEGIN "
            "SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} "
            "(notification_id, originator_id, originator_version, topic, state) "
            "SELECT (SELECT COALESCE(MAX(notification_id), 0) FROM {schema}.{table}) + e.n, "
            "e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(events) WITH ORDINALITY "
            "AS e(originator_id, originator_version, topic, state, n) "
            "RETURNING notification_id; "
            "END; $BODY$"
        ).format(
            insert_events=Identifier(self.pg_function_name_insert_events),
            lock_timeout=self.datastore.lock_timeout,
            channel=Identifier(self.channel_name),
            event=Identifier(self.stored_event_type_name),
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )
        self.sql_create_statements[self.create_insert_function_statement_index] = (
            self.sql_create_pg_function_insert_events
        )

        self.sql_select_notifications = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table}"
        ).format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
        )

    def create_table(self) -> None:
        """The library's, under the schema lock (:func:`made_under_lock`)."""
        made_under_lock(self.datastore, super().create_table)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """The library's query and result, read in binary format as tuples."""
        conditions: list[SQL] = []
        params: list[object] = []
        if start is not None:
            conditions.append(
                SQL("notification_id >= %s" if inclusive_of_start else "notification_id > %s")
            )
            params.append(start)
        if stop is not None:
            conditions.append(SQL("notification_id <= %s"))
            params.append(stop)
        if topics:
            conditions.append(SQL("topic = ANY(%s)"))
            params.append(list(topics))
        statement: Composed = self.sql_select_notifications + SQL("")
        if conditions:
            statement += SQL(" WHERE ") + SQL(" AND ").join(conditions)
        statement += SQL(" ORDER BY notification_id LIMIT %s")
        params.append(limit)
        return self._notifications(statement, params)

    def select_notifications_at(self, positions: Collection[int]) -> Sequence[Notification]:
        """The notifications at these positions (those there are), in log order, in one
        query."""
        if not positions:
            return []
        statement = self.sql_select_notifications + SQL(
            " WHERE notification_id = ANY(%s) ORDER BY notification_id"
        )
        return self._notifications(statement, [list(positions)])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_changes(self, after: int, limit: int) -> Sequence[tuple[int, UUID | str, int]]:
        """Position, originator id and version of at most ``limit`` events recorded after
        position ``after``, in log order: what changed, without the events' states."""
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version FROM {schema}.{table} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
        )
        return self._rows(statement, [after, limit])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events_of(
        self, originator_ids: Collection[UUID | str], snapshots_table: str | None = None
    ) -> list[StoredEvent]:
        """Every event of these originators, each one's in version order, in one query:
        several aggregates loaded at the cost of one round trip. With ``snapshots_table``,
        an originator's newest snapshot there comes first, then only its events after it
        (as :meth:`select_from_snapshot` reads one)."""
        table = Identifier(self.datastore.schema, self.events_table_name)
        if snapshots_table is None:
            statement = SQL(
                "SELECT originator_id, originator_version, topic, state FROM {table} "
                "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
            ).format(table=table)
            params: list[object] = [list(originator_ids)]
        else:
            statement = SQL(
                "WITH newest AS MATERIALIZED (SELECT DISTINCT ON (originator_id) "
                "originator_id, originator_version, topic, state FROM {snapshots} "
                "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version DESC) "
                "SELECT originator_id, originator_version, topic, state, 0 AS kind "
                "FROM newest UNION ALL "
                "SELECT e.originator_id, e.originator_version, e.topic, e.state, 1 "
                "FROM {table} AS e LEFT JOIN newest AS n ON n.originator_id = e.originator_id "
                "WHERE e.originator_id = ANY(%s) "
                "AND e.originator_version > COALESCE(n.originator_version, 0) "
                "ORDER BY 1, 5, 2"
            ).format(table=table, snapshots=Identifier(self.datastore.schema, snapshots_table))
            params = [list(originator_ids)] * 2
        return [
            StoredEvent(originator_id=row[0], originator_version=row[1], topic=row[2],
                        state=row[3])
            for row in self._rows(statement, params)
        ]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_from_snapshot(
        self, originator_id: UUID, snapshots_table: str
    ) -> tuple[StoredEvent | None, list[StoredEvent]]:
        """The aggregate's newest snapshot in ``snapshots_table`` (None if it has none) and
        its events after it, in one query: one round trip, as a load without snapshots."""
        schema = quoted(self.datastore.schema)
        statement = SQL(  # the names quoted, the id a parameter
            from_snapshot_statement(
                f"{schema}.{quoted(self.events_table_name)}",
                f"{schema}.{quoted(snapshots_table)}",
                "%s",
            )
        )
        return split_snapshot(self._rows(statement, [originator_id] * 3))

    def _notifications(self, statement: Composed, params: list[object]) -> list[Notification]:
        """The notifications a statement selects, read in binary as plain tuples."""
        return [
            Notification(
                id=notification_id,
                originator_id=originator_id,
                originator_version=originator_version,
                topic=topic,
                state=state,
            )
            for notification_id, originator_id, originator_version, topic, state in (
                self._rows(statement, params)
            )
        ]

    def _rows(self, statement: SQL | Composed, params: list[object]) -> list[tuple[Any, ...]]:
        """The rows a statement selects, read in PostgreSQL's binary format as plain tuples
        (prepared: each of these statements runs again and again)."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as curs,
        ):
            curs.execute(statement, params, prepare=True)
            return curs.fetchall()

    def log_table(self) -> LogTable:
        """The events table, for the read models' statements (they count uses and reuses
        in it, inside their own transactions)."""
        return LogTable(
            name=f"{quoted(self.datastore.schema)}.{quoted(self.events_table_name)}",
            position="notification_id",
            aggregate_id="originator_id::text",  # as str(UUID) writes it, or the text id
        )
