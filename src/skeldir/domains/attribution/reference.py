"""The per-order reference: each model's credits along one order's path, one revenue entry at a
time. The batch engine (`batch.allocate_batch`) computes the same cents for many orders at once
and falls back to this for the orders its floats cannot decide."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from skeldir.domains.attribution.model_settings import ModelSettings
from skeldir.domains.attribution.models import RULE_BASED_MODELS, Touchpoint, allocate_all
from skeldir.domains.attribution.weighted import weighted_credits


def reference_credits(
    path: Sequence[Touchpoint],
    ordered_at: datetime,
    amounts: Sequence[int],
    is_sale: Sequence[bool],
    settings: ModelSettings,
) -> dict[str, tuple[list[int], list[int]]]:
    """Per model, each touchpoint's (net, sales-only) credit along the canonical `path`, one
    order at a time. Each entry is apportioned on its own, so each sums exactly and a refund
    takes back exactly what its sale gave."""
    channels = [touchpoint.channel for touchpoint in path]
    lookback = ordered_at - min(touchpoint.occurred_at for touchpoint in path)
    per_entry = [
        allocate_all(path, amount, ordered_at, half_life=settings.half_life, lookback=lookback)
        for amount in amounts
    ]
    result = {}
    for model in settings.models:
        net, gross = [0] * len(path), [0] * len(path)
        for index, amount in enumerate(amounts):
            if model in RULE_BASED_MODELS:
                parts = [0] * len(path)
                for credit in per_entry[index][model]:
                    parts[credit.touchpoint_index] += credit.minor
            else:
                parts = weighted_credits(channels, settings.learned[model], amount)
            for position, minor in enumerate(parts):
                net[position] += minor
                if is_sale[index]:
                    gross[position] += minor
        result[model] = (net, gross)
    return result
