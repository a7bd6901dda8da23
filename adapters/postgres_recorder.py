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
"""

from __future__ import annotations

from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.sql import SQL, Identifier


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
