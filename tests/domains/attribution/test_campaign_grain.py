"""Credits at campaign grain, pure: per model, the grain credits of every order sum exactly to its
revenue and its order units to one order; the daily changes they make sum exactly to the batch's
revenue; taking back what was added leaves nothing; and the grain credits roll up to the same
per-channel credits as the channel report's packing."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skeldir.domains.attribution import packing
from skeldir.domains.attribution.batch import Batch, allocate_batch
from skeldir.domains.attribution.campaign_grain import (
    ORDER_UNITS,
    CampaignDayChanges,
    grain_credits,
    order_units,
    unpack_grains,
)
from skeldir.domains.attribution.model_settings import ModelSettings
from skeldir.domains.attribution.models import RULE_BASED_MODELS
from skeldir.domains.ingestion.campaign_keys import SEPARATOR

CHANNELS = ("direct", "paid_search", "paid_social", "email", "unknown")
GRAINS = tuple(
    SEPARATOR.join(parts)
    for parts in (
        ("", "", "", "", ""),
        ("meta", "c1", "", "s1", "a1"),
        ("meta", "c1", "", "s1", "a2"),
        ("google_ads", "", "Brand", "", ""),
        ("tiktok", "t9", "", "", ""),
    )
)
MODELS = RULE_BASED_MODELS + ("markov",)
DAY_US = 86_400_000_000
GROUPS = [(date(2026, 3, 1), "USD"), (date(2026, 3, 2), "USD"), (date(2026, 3, 1), "EUR")]


@st.composite
def batches(draw):
    learned = {"markov": draw(st.fixed_dictionaries(
        {}, optional={c: st.floats(0, 1, allow_nan=False) for c in CHANNELS}))}
    engine = ModelSettings(CHANNELS, timedelta(days=draw(st.integers(1, 30))), MODELS, learned)
    orders = draw(st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 40 * DAY_US), st.integers(0, len(CHANNELS) - 1),
                               st.integers(0, len(GRAINS) - 1)), min_size=1, max_size=8),
            st.lists(st.tuples(st.integers(1, 10**9), st.booleans()), min_size=1, max_size=3),
            st.booleans(),
            st.integers(0, len(GROUPS) - 1),
        ),
        min_size=1, max_size=20))
    offsets, channel, grain, age, entries = [0], [], [], [], []
    for index, (path, money, _new, _group) in enumerate(orders):
        for a, c, g in sorted(path):
            age.append(a)
            channel.append(c)
            grain.append(g)
        offsets.append(len(channel))
        for amount, sale in money:
            entries.append((index, amount if sale else -amount // 3, sale))
    batch = Batch(
        np.array(offsets, dtype=np.int64), np.array(channel, dtype=np.int64),
        np.array(age, dtype=np.int64), np.array([e[0] for e in entries], dtype=np.int64),
        np.array([e[1] for e in entries], dtype=np.int64),
        np.array([e[2] for e in entries], dtype=bool), np.array(grain, dtype=np.int64))
    new = np.array([o[2] for o in orders], dtype=bool)
    group = np.array([o[3] for o in orders], dtype=np.int64)
    return engine, batch, new, group


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_per_model_grain_credits_sum_exactly_to_revenue_and_to_whole_orders(case):
    engine, batch, new, group = case
    count = batch.orders
    tp_order = np.repeat(np.arange(count), np.diff(batch.offsets))
    revenue = packing.GroupSums(batch.entry_order, count)(batch.entry_amount)
    gross = packing.GroupSums(batch.entry_order, count)(
        np.where(batch.entry_is_sale, batch.entry_amount, 0))
    credits = allocate_batch(batch, engine)
    grains = grain_credits(count, tp_order, batch.channel, batch.grain, CHANNELS, GRAINS,
                           MODELS, credits, order_units(batch, gross, engine))

    for order in range(count):
        stored = unpack_grains(grains.encoded(order), len(MODELS), len(grains.grains(order)))
        for m, _model in enumerate(MODELS):
            assert stored[:, 0, m].sum() == revenue[order]
            assert stored[:, 1, m].sum() == gross[order]
            assert stored[:, 2, m].sum() == (ORDER_UNITS if gross[order] else 0)

    # The grain credits roll up to the channel report's per-channel credits.
    channel_packed = packing.pack(count, tp_order, batch.channel,
                                  [credits.net[m] for m in MODELS],
                                  [credits.gross[m] for m in MODELS])
    for order in range(count):
        per_channel: dict[str, np.ndarray] = {}
        for name, values in zip(grains.grains(order),
                                grains.values[grains.first[order]:grains.first[order + 1]],
                                strict=True):
            channel = name.split(SEPARATOR)[0]
            per_channel[channel] = per_channel.get(channel, 0) + values[:2]
        expected = {CHANNELS[c]: v for c, v in zip(
            channel_packed.channels(order).tolist(),
            channel_packed.values[channel_packed.first[order]:channel_packed.first[order + 1]],
            strict=True)}
        assert per_channel.keys() == expected.keys()
        for channel, values in expected.items():
            assert (per_channel[channel] == values).all()

    # The day's changes: per model and currency, net sums to revenue, units to orders, and the
    # new-customer figures to those of the orders counted new.
    pair_order = np.repeat(np.arange(count), np.diff(grains.first))
    changes = CampaignDayChanges.empty()
    changes.add(GROUPS, group[pair_order], grains.pair_grain, grains.names, MODELS,
                grains.values, new[pair_order], 1)
    rows = changes.rows()
    for model in MODELS:
        for currency in ("USD", "EUR"):
            mine = [r for r in rows if r[2] == model and r[1] == currency]
            orders = [o for o in range(count) if GROUPS[group[o]][1] == currency]
            assert sum(r[11] for r in mine) == sum(int(revenue[o]) for o in orders)
            assert sum(r[12] for r in mine) == ORDER_UNITS * sum(1 for o in orders if gross[o])
            assert sum(r[13] for r in mine) == ORDER_UNITS * sum(
                1 for o in orders if gross[o] and new[o])
            assert sum(r[14] for r in mine) == sum(int(revenue[o]) for o in orders if new[o])
    # Taking back what was added leaves no change.
    changes.add(GROUPS, group[pair_order], grains.pair_grain, grains.names, MODELS,
                grains.values, new[pair_order], -1)
    assert changes.rows() == []
