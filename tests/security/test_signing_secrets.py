"""Signing secrets, as the runtime role sees them: never in clear. It holds no privilege on the
secrets table, the lookups hand it ciphertext, and after real deliveries for every provider the
plaintext is in no column of any row it can read, in any encoding."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import pytest
from security_catalog import readable_columns, relations
from signed_deliveries import (
    PROVIDERS,
    SECRETS,
    leaked,
    local_paypal_provider,
    needles,
    sale,
    secret_key_bytes,
    signed,
    unprocessable,
)

from skeldir.base import credentials
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.providers import registry
from skeldir.operations import tenants

pytestmark = pytest.mark.anyio

ROTATED_SHOPIFY_SECRET = "shpss_leakcheck_rotated_44aa01"


@dataclass(frozen=True)
class Shop:
    tenant_id: uuid.UUID
    webhook_key: str
    sources: dict[str, tenants.CreatedSource]


@pytest.fixture(scope="module")
def shop(database: Settings) -> Shop:
    """A tenant with one source per provider; Shopify's holds a second secret (a rotation)."""
    box = secret_box(database)
    with owner_connection(database) as conn:
        tenant = tenants.create_tenant(conn, box, "leak check")
        sources = {
            provider: tenants.add_source(conn, box, tenant_id=tenant.tenant_id, provider=provider,
                                         secret=secret, public_url="http://test")
            for provider, secret in SECRETS.items()
        }
        tenants.rotate_secret(conn, box, tenant_id=tenant.tenant_id,
                              source_id=sources["shopify"].source_id, secret=ROTATED_SHOPIFY_SECRET)
    return Shop(tenant.tenant_id, tenant.webhook_key, sources)


def secret_needles(database: Settings, shop: Shop) -> dict[bytes, str]:
    with owner_connection(database) as conn:
        stitch = conn.execute("SELECT stitch_key_ciphertext FROM tenants WHERE tenant_id = %s",
                              (shop.tenant_id,)).fetchone()[0]
    named: dict[str, str | bytes] = {f"{p} secret": s for p, s in SECRETS.items()}
    named |= {
        "rotated shopify secret": ROTATED_SHOPIFY_SECRET,
        "standard key": secret_key_bytes("standard"),
        # The tenant's stitch key turns customer references into digests: a secret as well.
        "stitch key": secret_box(database).decrypt(bytes(stitch), context=shop.tenant_id.bytes),
        "SKELDIR_SECRET_KEY": database.secret_key,
        "secret key bytes": base64.b64decode(database.secret_key),
    }
    return needles(named)


def test_a_leak_search_finds_a_secret_however_it_is_encoded() -> None:
    secret = SECRETS["stripe"].encode()
    found = needles({"stripe": secret})
    for wrapped in (b"..." + secret + b"...", secret.hex().upper().encode(),
                    base64.b64encode(b"x" + secret + b"yz"),
                    base64.urlsafe_b64encode(b"ab" + secret)):
        assert leaked(b"prefix " + wrapped + b" suffix", found) == {"stripe"}, wrapped
    assert leaked(base64.b64encode(b"x" + SECRETS["shopify"].encode()), found) == set()


def test_the_runtime_role_holds_no_privilege_on_the_secrets_table(database: Settings) -> None:
    with owner_connection(database) as conn:
        granted = [
            privilege
            for privilege, function in [
                ("SELECT", "has_any_column_privilege"), ("INSERT", "has_any_column_privilege"),
                ("UPDATE", "has_any_column_privilege"), ("REFERENCES", "has_any_column_privilege"),
                ("DELETE", "has_table_privilege"), ("TRUNCATE", "has_table_privilege"),
                ("TRIGGER", "has_table_privilege"),
            ]
            if conn.execute(f"SELECT {function}(%s, 'public.webhook_source_secrets', %s)",
                            (database.runtime_role, privilege)).fetchone()[0]
        ]
    assert granted == []


async def test_the_lookups_hand_out_ciphertext_only(database: Settings, shop: Shop,
                                                    runtime_pool) -> None:
    box = secret_box(database)
    found = secret_needles(database, shop)
    for provider, source in shop.sources.items():
        token = urlsplit(source.url).path.rsplit("/", 1)[-1]
        by_token = await runtime_pool.fetchrow("SELECT * FROM resolve_source($1, $2)",
                                               shop.tenant_id, credentials.digest(token))
        by_key = await runtime_pool.fetchrow(
            "SELECT * FROM resolve_source_by_key($1, $2, $3)",
            shop.tenant_id, credentials.digest(shop.webhook_key), provider)
        expected = {SECRETS[provider]}
        if provider == "shopify":
            expected.add(ROTATED_SHOPIFY_SECRET)
        for row in (by_token, by_key):
            assert row["source_id"] == source.source_id
            decrypted = {box.decrypt(c, context=source.source_id.bytes).decode()
                         for c in row["secrets"]}
            assert decrypted == expected  # so the values below are the secrets, encrypted
            for value in (*row["secrets"], row["stitch_key"], repr(dict(row))):
                assert leaked(value, found) == set(), provider


async def test_no_column_the_runtime_role_can_read_holds_a_secret(
        database: Settings, shop: Shop, client, runtime_pool, monkeypatch) -> None:
    monkeypatch.setitem(registry.PROVIDERS, "paypal", local_paypal_provider())
    for number, provider in enumerate(PROVIDERS, start=930001):
        path = urlsplit(shop.sources[provider].url).path
        for document in (sale(provider, number), unprocessable(provider)):
            body, headers = signed(provider, document)
            response = client.post(path, content=body, headers=headers)
            assert response.status_code == 200, (provider, response.text)
        body, headers = signed(provider, sale(provider, number), secret=b"not-the-secret")
        assert client.post(path, content=body, headers=headers).status_code == 401

    with owner_connection(database) as conn:
        readable = {relation.name: readable_columns(conn, database.runtime_role, relation.name)
                    for relation in relations(conn)}
        tenant_ids = [row[0] for row in conn.execute("SELECT tenant_id FROM tenants")]
    found = secret_needles(database, shop)
    rows_read: dict[str, int] = {}
    # Every row the role can reach: under each tenant's context in turn.
    for tenant_id in tenant_ids:
        async with tenant_transaction(runtime_pool, tenant_id) as conn:
            for relation, columns in readable.items():
                if not columns:
                    continue
                rows = await conn.fetch(f"SELECT {', '.join(columns)} FROM {relation}")
                if tenant_id == shop.tenant_id:
                    rows_read[relation] = len(rows)
                for row in rows:
                    for column, value in row.items():
                        text = value if isinstance(value, bytes) else repr(value)
                        assert leaked(text, found) == set(), f"{relation}.{column}"
    # The search covered what the deliveries wrote: events, dead events, orders, sources.
    assert rows_read["public.webhook_sources"] == len(PROVIDERS)
    assert rows_read["public.webhook_events"] >= len(PROVIDERS)
    assert rows_read["public.dead_events"] >= len(PROVIDERS)
    assert rows_read["public.orders"] >= len(PROVIDERS)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with tenant_transaction(runtime_pool, shop.tenant_id) as conn:
            await conn.fetch("SELECT ciphertext FROM webhook_source_secrets")
