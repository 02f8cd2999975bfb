"""Credits at campaign grain: per order, each (channel, platform, campaign, ad set, ad) of its
path with its net, gross and order-unit credits per model, and what a batch changes in the
daily campaign report (`campaign_daily`).

A grain is named by its parts joined by `campaign_keys.SEPARATOR`: channel, platform, campaign
id (utm_id), utm_campaign (only without a campaign id), ad set id, ad id. An order's row packs,
per grain and model, its net, gross (sales only) and order units as big-endian int64s: the
layout SQL's `credit_minor(grain_credits, (grain * 3 + kind) * models + model)` reads. Order
units split one order (ORDER_UNITS of them) by the model's own weights and largest remainders,
so fractional orders and new customers are exact and each order's sum to exactly one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skeldir.domains.attribution.batch import Batch, Credits, allocate_batch
from skeldir.domains.attribution.model_settings import ModelSettings
from skeldir.domains.attribution.packing import GroupSums, PackedOrders, pack
from skeldir.domains.ingestion.campaign_keys import SEPARATOR

ORDER_UNITS = 1_000_000
KINDS = 3  # net, gross, order units
_BIG_ENDIAN = np.dtype(">i8")
# Joins an order's grain names for the trip to SQL (string_to_array); no name holds it.
GRAIN_LIST_SEPARATOR = "\x1e"


def order_units(batch: Batch, gross: np.ndarray, settings: ModelSettings) -> Credits:
    """Each touchpoint's share of its order in millionths, by each model's weights: an order
    with sales is one order, split exactly as its revenue is."""
    counted = np.flatnonzero(gross != 0)
    units = Batch(
        batch.offsets,
        batch.channel,
        batch.age_us,
        counted.astype(np.int64),
        np.full(len(counted), ORDER_UNITS, dtype=np.int64),
        np.ones(len(counted), dtype=bool),
    )
    return allocate_batch(units, settings)


@dataclass(frozen=True)
class GrainCredits:
    """One batch's credits per (order, grain): order i's grains are pair_grain[first[i]:
    first[i + 1]], indexes into `names`; values is int64[P, 3, M] (net, gross, units)."""

    first: np.ndarray
    pair_grain: np.ndarray
    values: np.ndarray
    names: list[str]

    def grains(self, order: int) -> list[str]:
        return [self.names[g] for g in self.pair_grain[self.first[order] : self.first[order + 1]]]

    def encoded(self, order: int) -> bytes:
        return self.values[self.first[order] : self.first[order + 1]].astype(_BIG_ENDIAN).tobytes()

    def stored(self, orders: np.ndarray) -> tuple[list[str], list[bytes]]:
        """For each of `orders`: its grain names joined by GRAIN_LIST_SEPARATOR, and its packed
        credits. A batch has few distinct grain lists, so each is joined once."""
        raw = memoryview(self.values.astype(_BIG_ENDIAN).tobytes())
        width = self.values.shape[1] * self.values.shape[2] * 8
        bounds = (self.first * width).tolist()
        first = self.first.tolist()
        codes = self.pair_grain.astype(np.int32)
        joined: dict[bytes, str] = {}
        lists, credits = [], []
        for order in orders.tolist():
            key = codes[first[order] : first[order + 1]].tobytes()
            names = joined.get(key)
            if names is None:
                names = joined[key] = GRAIN_LIST_SEPARATOR.join(
                    self.names[g] for g in np.frombuffer(key, dtype=np.int32).tolist()
                )
            lists.append(names)
            credits.append(bytes(raw[bounds[order] : bounds[order + 1]]))
        return lists, credits


def grain_credits(
    orders: int,
    tp_order: np.ndarray,
    tp_channel: np.ndarray,
    tp_grain: np.ndarray,
    channel_names: Sequence[str],
    grain_names: Sequence[str],
    models: Sequence[str],
    credits: Credits,
    units: Credits,
) -> GrainCredits:
    """Sum each model's per-touchpoint credits per (order, channel and grain)."""
    width = max(len(grain_names), 1)
    key = tp_channel * width + tp_grain
    money: PackedOrders = pack(
        orders, tp_order, key, [credits.net[m] for m in models], [credits.gross[m] for m in models]
    )
    shares = pack(
        orders, tp_order, key, [units.net[m] for m in models], [units.net[m] for m in models]
    )
    values = np.concatenate([money.values, shares.values[:, :1, :]], axis=1)
    used, pair_grain = np.unique(money.pair_channel, return_inverse=True)
    names = [
        f"{channel_names[k // width]}{SEPARATOR}{grain_names[k % width]}" for k in used.tolist()
    ]
    return GrainCredits(money.first, pair_grain.astype(np.int64), values, names)


def unpack_grains(credits: bytes, models: int, grains: int) -> np.ndarray:
    """int64[grains, 3, models] from a stored row's packed grain credits."""
    return np.frombuffer(credits, dtype=_BIG_ENDIAN).reshape(grains, KINDS, models).astype(np.int64)


@dataclass
class CampaignDayChanges:
    """Additions to the daily campaign report, keyed by (day, currency, model, grain)."""

    # key -> [revenue, refunds, net, order units, new-customer units, new-customer net]
    totals: dict[tuple, list[int]]

    @classmethod
    def empty(cls) -> CampaignDayChanges:
        return cls({})

    def add(
        self,
        groups: Sequence[tuple],
        pair_group: np.ndarray,
        pair_grain: np.ndarray,
        grain_names: Sequence[str],
        models: Sequence[str],
        values: np.ndarray,
        pair_new: np.ndarray,
        sign: int,
    ) -> None:
        """Add (sign 1) or take back (sign -1) the credits of (order, grain) pairs:
        `pair_group` indexes `groups` ((day, currency) of the pair's order), `pair_grain`
        indexes `grain_names`, `values` is int64[P, 3, M], `pair_new` says whether the pair's
        order counted as a new customer's."""
        if not len(pair_group):
            return
        width = len(grain_names)
        unique, inverse = np.unique(pair_group * width + pair_grain, return_inverse=True)
        keys = [
            (*groups[combined // width], grain_names[combined % width])
            for combined in unique.tolist()
        ]
        sums = GroupSums(inverse)
        new = pair_new.astype(np.int64)
        for model_index, model in enumerate(models):
            net = values[:, 0, model_index]
            gross = values[:, 1, model_index]
            units = values[:, 2, model_index]
            table = np.stack(
                [sums(gross), sums(gross - net), sums(net), sums(units), sums(units * new),
                 sums(net * new)],
                axis=1,
            )
            for (day, currency, grain), row in zip(keys, (sign * table).tolist(), strict=True):
                entry = self.totals.setdefault((day, currency, model, grain), [0] * 6)
                for field in range(6):
                    entry[field] += row[field]

    def rows(self) -> list[tuple]:
        """(day, currency, model, channel, platform, campaign id, utm_campaign, ad set, ad,
        revenue, refunds, net, order units, new-customer units, new-customer net); zero
        changes left out."""
        return [
            (day, currency, model, *grain.split(SEPARATOR), *totals)
            for (day, currency, model, grain), totals in self.totals.items()
            if any(totals)
        ]
