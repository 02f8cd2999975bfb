"""Learned weights on real PostgreSQL: journeys in, versioned Markov and Shapley weights out,
and the recompute then credits every order under eight models, exactly."""

from __future__ import annotations

import pytest

from db_helpers import create_tenant, model_allocations
from learning_journeys import EMAIL, SEARCH, SOCIAL, converting_journeys, order, run_chain, visit
from skeldir.base.config import Settings
from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.learning import learn_weights
from skeldir.operations.model_learning import learn_first_weights, learn_now
from skeldir.operations.reattribution import pending_orders

pytestmark = pytest.mark.anyio


async def test_learned_weights_credit_orders_under_the_data_driven_models(database: Settings, worker_pool):
    tenant = create_tenant(database)
    pool = worker_pool
    # Search then email converts; search alone converts; social alone never does.
    for n in range(4):
        await visit(pool, database, tenant, f"a{n}", SEARCH, 30)
        await visit(pool, database, tenant, f"a{n}", EMAIL, 10)
        await order(pool, database, tenant, 5000 + n, f"a{n}", "90.00")
    for n in range(3):
        await visit(pool, database, tenant, f"b{n}", SEARCH, 20)
        await order(pool, database, tenant, 5100 + n, f"b{n}", "10.00")
    for n in range(5):
        await visit(pool, database, tenant, f"c{n}", SOCIAL, 5)
    await run_chain(pool, tenant)  # stitches the orders to their visitors

    learned = {item.model: item for item in await learn_weights(pool, tenant.tenant_id)}
    assert set(learned) == {"markov", "shapley"}
    for item in learned.values():
        assert item.version == 1 and item.paths == 12 and item.conversions == 7
        assert abs(sum(item.weights.values()) - 1) < 1e-9
        assert item.weights.get("organic_social", 0) == 0, "a channel that never converts earns nothing"
        assert item.weights["paid_search"] > item.weights["email"] > 0

    await order(pool, database, tenant, 5200, "a0", "100.00")
    await run_chain(pool, tenant)
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        by_model = await model_allocations(conn, "5200")
        summary = await conn.fetch(
            "SELECT s.model, s.is_balanced FROM allocation_summary s JOIN orders o USING (tenant_id, order_id)"
            " WHERE o.external_order_id = '5200'")
    assert set(by_model) == {"first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
                             "position_based", "markov", "shapley"}
    for model in ("markov", "shapley"):
        row = by_model[model]
        assert row["model_version"] == 1 and sum(row["credits_minor"]) == 10000
        assert dict(zip(row["channels"], row["credits_minor"]))["paid_search"] > 5000
    assert all(r["is_balanced"] for r in summary) and len(summary) == 8

    again = {item.model: item.version for item in await learn_weights(pool, tenant.tenant_id)}
    assert again == {"markov": 2, "shapley": 2}


async def test_learning_now_marks_the_windows_orders_for_re_attribution(database: Settings,
                                                                       worker_pool):
    tenant = create_tenant(database)
    await converting_journeys(worker_pool, database, tenant, 3, first_order=5300)
    assert await pending_orders(worker_pool, tenant.tenant_id) == 0
    outcome = await learn_now(worker_pool, tenant.tenant_id)
    assert {w.model: w.version for w in outcome.learned} == {"markov": 1, "shapley": 1}
    assert outcome.orders_marked == 3 and outcome.first_day <= outcome.last_day
    assert await pending_orders(worker_pool, tenant.tenant_id) == 3
    await run_chain(worker_pool, tenant)
    async with tenant_transaction(worker_pool, tenant.tenant_id) as conn:
        by_model = await model_allocations(conn, "5300")
    assert by_model["markov"]["model_version"] == 1 and by_model["shapley"]["model_version"] == 1


async def test_nothing_is_learned_or_marked_without_a_converting_journey(database: Settings,
                                                                        runtime_pool):
    tenant = create_tenant(database)
    await visit(runtime_pool, database, tenant, "only-browses", SOCIAL, 2)
    outcome = await learn_now(runtime_pool, tenant.tenant_id)
    assert (outcome.learned, outcome.orders_marked) == ([], 0)


async def test_a_new_tenant_learns_its_first_weights_once_it_has_enough_conversions(
        database: Settings, worker_pool):
    tenant = create_tenant(database)
    await converting_journeys(worker_pool, database, tenant, 2, first_order=5400)
    assert await learn_first_weights(worker_pool, tenant.tenant_id, min_conversions=3) is None
    await converting_journeys(worker_pool, database, tenant, 1, first_order=5410)
    first = await learn_first_weights(worker_pool, tenant.tenant_id, min_conversions=3)
    assert first is not None and {w.version for w in first.learned} == {1}
    assert first.orders_marked == 3
    # Once weights exist, the schedule learns the next version, not every recompute.
    assert await learn_first_weights(worker_pool, tenant.tenant_id, min_conversions=3) is None
