"""What a tenant's orders are attributed with: its channel rules in force, its windows and its
learned weights, read once per batch; and the touchpoints classified again under new rules."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import orjson

from skeldir.domains.attribution.channel_rules import RuleSet, default_rule_set
from skeldir.domains.attribution.channels import channel_sort_key
from skeldir.domains.attribution.model_settings import ModelSettings
from skeldir.domains.attribution.models import (
    DATA_DRIVEN_MODELS,
    MODEL_VERSION,
    RULE_BASED_MODELS,
    Touchpoint,
)
from skeldir.domains.attribution.reference import reference_credits
from skeldir.domains.ingestion.hints import hints_from_document

_TENANT_SQL = """
SELECT reporting_currency, lookback_days, half_life_days FROM tenants WHERE tenant_id = $1
"""

_LATEST_WEIGHTS_SQL = """
SELECT DISTINCT ON (model) model, version, weights FROM model_weights
WHERE tenant_id = $1 ORDER BY model, version DESC
"""

_RULES_SQL = """
SELECT version, document FROM channel_rule_sets WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1
"""

_RECLASSIFY_SQL = """
UPDATE touchpoints t SET channel = v.channel, platform = v.platform, rules_version = $5
FROM unnest($2::text[], $3::text[], $4::text[]) AS v(touchpoint_id, channel, platform)
WHERE t.tenant_id = $1 AND t.touchpoint_id = v.touchpoint_id
"""


@dataclass(frozen=True)
class TenantAttribution:
    """What a tenant's orders are attributed with: rules, windows and learned weights."""

    reporting_currency: str
    lookback: timedelta
    half_life: timedelta
    rules_version: int
    rule_set: RuleSet
    learned: dict[str, dict[str, float]]  # model -> channel -> weight
    learned_versions: dict[str, int]

    @property
    def models(self) -> tuple[str, ...]:
        return RULE_BASED_MODELS + tuple(m for m in DATA_DRIVEN_MODELS if m in self.learned)

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel the rules can give, in the fixed channel order."""
        return tuple(sorted(self.rule_set.channels, key=channel_sort_key))

    def classify(self, hints) -> str:
        return self.rule_set.classify(hints)

    def platform(self, hints) -> str:
        return self.rule_set.platform(hints)

    def version(self, model: str) -> int:
        return self.learned_versions.get(model, MODEL_VERSION.get(model, 1))

    @functools.cached_property
    def model_settings(self) -> ModelSettings:
        return ModelSettings(self.channels, self.half_life, self.models, self.learned)


def path_credits(
    path: Sequence[Touchpoint],
    ordered_at: datetime,
    amounts: Sequence[int],
    is_sale: Sequence[bool],
    tenant: TenantAttribution,
) -> dict[str, tuple[list[int], list[int]]]:
    """Per model, each touchpoint's (net, sales-only) credit along one order's canonical path."""
    return reference_credits(path, ordered_at, amounts, is_sale, tenant.model_settings)


@functools.lru_cache(maxsize=256)
def _rule_set(document: bytes) -> RuleSet:
    """Compiled once per distinct document, so its classification caches outlive a batch."""
    return RuleSet.from_resolved(orjson.loads(document))


async def rules_in_force(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> tuple[int, object]:
    """(version, classify) of the tenant's channel rules, classify giving (channel, platform);
    version 0 is the default rules."""
    rules = await conn.fetchrow(_RULES_SQL, tenant_id)
    if rules is None:
        return 0, default_rule_set().channel_and_platform
    document = orjson.dumps(rules["document"], option=orjson.OPT_SORT_KEYS)
    return rules["version"], _rule_set(document).channel_and_platform


async def load_tenant_attribution(
    conn: asyncpg.Connection, tenant_id: uuid.UUID
) -> TenantAttribution:
    tenant = await conn.fetchrow(_TENANT_SQL, tenant_id)
    rules = await conn.fetchrow(_RULES_SQL, tenant_id)
    learned = await conn.fetch(_LATEST_WEIGHTS_SQL, tenant_id)
    rule_set = (
        _rule_set(orjson.dumps(rules["document"], option=orjson.OPT_SORT_KEYS))
        if rules
        else default_rule_set()
    )
    return TenantAttribution(
        reporting_currency=tenant["reporting_currency"],
        lookback=timedelta(days=tenant["lookback_days"]),
        half_life=timedelta(days=float(tenant["half_life_days"])),
        rules_version=rules["version"] if rules else 0,
        rule_set=rule_set,
        learned={r["model"]: r["weights"] for r in learned if r["weights"]},
        learned_versions={r["model"]: r["version"] for r in learned},
    )


async def reclassify(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution, stale: list
) -> None:
    """Store the channel and platform of each (touchpoint_id, hints) row under the rules in
    force."""
    if not stale:
        return
    hints = [hints_from_document(r["hints"]) for r in stale]
    await conn.execute(
        _RECLASSIFY_SQL,
        tenant_id,
        [r["touchpoint_id"] for r in stale],
        [tenant.classify(h) for h in hints],
        [tenant.platform(h) for h in hints],
        tenant.rules_version,
    )
