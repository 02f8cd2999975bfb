"""The learned weights over HTTP: read the newest version (read key), learn now (admin key)."""

from __future__ import annotations

from db_helpers import create_tenant
from learning_journeys import add_converting_journeys
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def pending(database: Settings, tenant) -> int:
    with owner_connection(database) as conn:
        return conn.execute("SELECT count(*) FROM pending_orders WHERE tenant_id = %s",
                            (tenant.tenant_id,)).fetchone()[0]


def test_an_admin_learns_now_and_a_reader_sees_the_newest_weights(client, database):
    tenant = create_tenant(database)
    admin = bearer(tenant.api_key)
    reader = bearer(client.post("/api/keys", json={"scope": "read"}, headers=admin)
                    .json()["api_key"])
    add_converting_journeys(database, tenant, 3, first_order=6100)
    assert client.get("/api/attribution/weights?model=markov", headers=reader).status_code == 404

    assert client.post("/api/attribution/weights/learn", headers=reader).status_code == 403
    learned = client.post("/api/attribution/weights/learn", headers=admin)
    assert learned.status_code == 200, learned.text
    body = learned.json()
    assert [(w["model"], w["version"]) for w in body["learned"]] == [("markov", 1), ("shapley", 1)]
    assert body["orders_marked"] == 3 and pending(database, tenant) == 3

    for model in ("markov", "shapley"):
        answer = client.get(f"/api/attribution/weights?model={model}", headers=reader)
        assert answer.status_code == 200, answer.text
        weights = answer.json()
        assert set(weights) == {"model", "version", "learned_at", "journeys", "conversions",
                                "weights"}
        assert (weights["model"], weights["version"]) == (model, 1)
        assert (weights["journeys"], weights["conversions"]) == (4, 3)
        assert abs(sum(weights["weights"].values()) - 1) < 1e-9
        assert weights["weights"]["paid_search"] > 0 and weights["weights"]["email"] > 0

    client.post("/api/attribution/weights/learn", headers=admin)
    newest = client.get("/api/attribution/weights?model=markov", headers=reader).json()
    assert newest["version"] == 2


def test_weights_are_only_for_data_driven_models_and_keyed_readers(client, database):
    tenant = create_tenant(database)
    admin = bearer(tenant.api_key)
    assert client.get("/api/attribution/weights?model=linear", headers=admin).status_code == 400
    assert client.get("/api/attribution/weights", headers=admin).status_code == 422
    assert client.get("/api/attribution/weights?model=markov").status_code == 401
    collect = bearer(tenant.collect_key)
    assert client.get("/api/attribution/weights?model=markov", headers=collect).status_code == 403
    # Nothing converted yet: nothing to learn from, and nothing is marked.
    nothing = client.post("/api/attribution/weights/learn", headers=admin)
    assert nothing.status_code == 409 and "nothing to learn" in nothing.json()["detail"]
    assert pending(database, tenant) == 0


def test_one_tenants_weights_are_not_anothers(client, database):
    learner, other = create_tenant(database), create_tenant(database)
    add_converting_journeys(database, learner, 2, first_order=6200)
    assert client.post("/api/attribution/weights/learn",
                       headers=bearer(learner.api_key)).status_code == 200
    assert client.get("/api/attribution/weights?model=shapley",
                      headers=bearer(other.api_key)).status_code == 404
