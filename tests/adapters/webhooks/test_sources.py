"""Webhook sources: lookup by token or tenant key, secret rotation and retirement, caching."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest
from db_helpers import SHOPIFY_SECRET

from skeldir.adapters.webhooks.sources import SourceResolver
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection
from skeldir.operations import api_keys, tenants

pytestmark = pytest.mark.anyio


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[-1]


@pytest.fixture
async def resolver(database: Settings, runtime_pool) -> AsyncIterator[SourceResolver]:
    """A resolver listening for changes, as the API runs one."""
    resolver = SourceResolver(runtime_pool, secret_box(database), ttl_seconds=60,
                              listen_dsn=database.database_url)
    await resolver.start()
    try:
        yield resolver
    finally:
        await resolver.close()


async def test_source_resolves_by_token_and_by_tenant_key(database: Settings, runtime_pool, tenant_factory):
    tenant = tenant_factory()
    resolver = SourceResolver(runtime_pool, secret_box(database), ttl_seconds=60,
                              listen_dsn=database.database_url)
    by_token = await resolver.by_token(token_of(tenant.source_url))
    by_key = await resolver.by_tenant_key(tenant.webhook_key, "shopify")
    assert by_token == by_key
    assert (by_token.tenant_id, by_token.provider, by_token.secrets) == (
        tenant.tenant_id, "shopify", (SHOPIFY_SECRET.encode(),))
    assert await resolver.by_tenant_key(tenant.webhook_key, "stripe") is None
    assert await resolver.by_tenant_key(tenant.api_key, "shopify") is None, "only the webhook key"
    assert await resolver.by_token("src_" + uuid.uuid4().hex + "_guess") is None
    assert await resolver.by_token("garbage") is None


async def test_rotation_adds_a_secret_and_retirement_removes_the_old_one(
    database: Settings, tenant_factory, resolver
):
    tenant = tenant_factory()
    token = token_of(tenant.source_url)
    assert (await resolver.by_token(token)).secrets == (SHOPIFY_SECRET.encode(),)
    with owner_connection(database) as conn:
        rotated = tenants.rotate_secret(conn, secret_box(database), tenant_id=tenant.tenant_id,
                                        source_id=tenant.source_id, secret="new-secret")
    both = await _eventually(resolver, token, lambda s: len(s.secrets) == 2)
    assert set(both.secrets) == {b"new-secret", SHOPIFY_SECRET.encode()}

    with owner_connection(database) as conn:
        tenants.rotate_secret(conn, secret_box(database), tenant_id=tenant.tenant_id,
                              source_id=tenant.source_id, secret=None, retire_others=False,
                              retire=[uuid.UUID(s["secret_id"]) for s in tenants.list_sources(
                                conn, tenant.tenant_id)[0]["secrets"]
                                if s["secret_id"] != rotated["added_secret_id"]])
    only_new = await _eventually(resolver, token, lambda s: len(s.secrets) == 1)
    assert only_new.secrets == (b"new-secret",)

    with owner_connection(database) as conn:
        graced = tenants.rotate_secret(conn, secret_box(database), tenant_id=tenant.tenant_id,
                                       source_id=tenant.source_id, secret="newest",
                                       retire_others=True, grace=timedelta(hours=1))
    assert graced["retired_secret_ids"] == [rotated["added_secret_id"]]
    in_grace = await _eventually(resolver, token, lambda s: len(s.secrets) == 2)
    assert set(in_grace.secrets) == {b"newest", b"new-secret"}, "a retired secret verifies during grace"


async def _eventually(resolver: SourceResolver, token: str, check, attempts: int = 100):
    """The change arrives by NOTIFY; poll the resolver until it has dropped its cache."""
    for _ in range(attempts):
        found = await resolver.by_token(token)
        if found is not None and check(found):
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"resolver still answers {found!r} after {attempts} polls")


async def _eventually_key(resolver: SourceResolver, key: str, check, seconds: float = 1.0):
    """The tenant-key lookup once `check` holds, within `seconds` (the promise is one second)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await resolver.by_tenant_key(key, "shopify")
        if check(found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"resolver still answers {found!r} after {seconds}s")
        await asyncio.sleep(0.02)


async def test_a_revoked_webhook_key_stops_resolving_within_a_second(
    database: Settings, runtime_pool, tenant_factory, resolver
):
    tenant = tenant_factory()
    assert await resolver.by_tenant_key(tenant.webhook_key, "shopify") is not None  # cached
    listed = await api_keys.list_keys(runtime_pool, tenant.tenant_id)
    webhook_key_id = next(k["key_id"] for k in listed if k["scope"] == "webhook")
    await api_keys.revoke_key(runtime_pool, tenant.tenant_id, uuid.UUID(webhook_key_id))
    await _eventually_key(resolver, tenant.webhook_key, lambda found: found is None)


async def test_a_lost_listener_bypasses_the_cache_then_listens_again(
    database: Settings, admin_url: str, tenant_factory, resolver
):
    tenant = tenant_factory()
    assert await resolver.by_tenant_key(tenant.webhook_key, "shopify") is not None
    listener_pid = resolver._listener.get_server_pid()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (listener_pid,))
    # Whatever happens while nobody listens is seen: nothing is answered from the cache.
    with owner_connection(database) as conn:
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s"
                     " AND scope = 'webhook'", (tenant.tenant_id,))
        conn.commit()
    await _eventually_key(resolver, tenant.webhook_key, lambda found: found is None)
    deadline = asyncio.get_running_loop().time() + 10
    while not (resolver.listening and resolver._listener.get_server_pid() != listener_pid):
        assert asyncio.get_running_loop().time() < deadline, "the resolver never listened again"
        await asyncio.sleep(0.05)
    # Listening again: a change made now reaches it by notification.
    with owner_connection(database) as conn:
        conn.execute("UPDATE api_keys SET revoked_at = NULL WHERE tenant_id = %s"
                     " AND scope = 'webhook'", (tenant.tenant_id,))
        conn.commit()
    await _eventually_key(resolver, tenant.webhook_key, lambda found: found is not None)
    with owner_connection(database) as conn:
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s"
                     " AND scope = 'webhook'", (tenant.tenant_id,))
        conn.commit()
    await _eventually_key(resolver, tenant.webhook_key, lambda found: found is None)


def test_operator_errors_are_clear(database: Settings, tenant_factory):
    tenant = tenant_factory()
    with owner_connection(database) as conn, pytest.raises(tenants.AdminError, match="provider"):
        tenants.add_source(conn, secret_box(database), tenant_id=tenant.tenant_id, provider="ebay",
                           secret="s", public_url="http://x")
    with owner_connection(database) as conn, pytest.raises(tenants.AdminError, match="no tenant"):
        tenants.add_source(conn, secret_box(database), tenant_id=uuid.uuid4(), provider="shopify",
                           secret="s", public_url="http://x")
    with (
        owner_connection(database) as conn,
        pytest.raises(tenants.AdminError, match="no such source"),
    ):
        tenants.rotate_secret(conn, secret_box(database), tenant_id=tenant.tenant_id,
                              source_id=uuid.uuid4(), secret="s")


def test_a_tenant_reports_in_a_real_currency(database: Settings):
    with owner_connection(database) as conn:
        with pytest.raises(tenants.AdminError, match="ISO 4217"):
            tenants.create_tenant(conn, secret_box(database), "shop", reporting_currency="XYZ")
        created = tenants.create_tenant(
            conn, secret_box(database), "shop", reporting_currency="eur"
        )
        currency = conn.execute("SELECT reporting_currency FROM tenants WHERE tenant_id = %s",
                                (created.tenant_id,)).fetchone()[0]
    assert currency == "EUR"
