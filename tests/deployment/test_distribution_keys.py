"""The schema can be distributed by tenant_id later (Citus): a check over the catalog, so a table
or key added by a later migration is covered without editing this test."""

from __future__ import annotations

from distribution_keys import undistributable

from skeldir.base.config import Settings
from skeldir.base.db import owner_connection


def test_every_key_and_reference_of_a_tenant_table_leads_with_tenant_id(database: Settings) -> None:
    with owner_connection(database) as conn:
        assert undistributable(conn) == []


def test_the_check_catches_a_key_or_reference_that_spans_tenants(database: Settings) -> None:
    with owner_connection(database) as conn:
        # Made and inspected in one transaction that is rolled back: nobody else sees them.
        conn.execute("CREATE TABLE order_notes (tenant_id uuid NOT NULL, note_id bigint PRIMARY KEY,"
                     " order_id bigint, UNIQUE (tenant_id, order_id))")
        conn.execute("CREATE UNIQUE INDEX order_notes_by_order ON order_notes (order_id)")
        conn.execute("ALTER TABLE order_notes ADD CONSTRAINT order_notes_order"
                     " FOREIGN KEY (order_id) REFERENCES order_notes (note_id)")
        problems = undistributable(conn)
        conn.rollback()
    assert problems == [
        "order_notes: key order_notes_by_order ['order_id'] does not lead with tenant_id",
        "order_notes: key order_notes_pkey ['note_id'] does not lead with tenant_id",
        "order_notes: reference order_notes_order to order_notes does not match tenant_id"
        " with tenant_id",
    ]
