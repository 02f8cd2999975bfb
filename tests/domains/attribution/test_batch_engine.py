"""The NumPy batch engine against the per-order reference: the same integer cents, bit for bit,
for every order and every model; exact sums; independence of batch order; and packing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skeldir.domains.attribution import packing
from skeldir.domains.attribution.batch import MAX_VECTOR_AMOUNT, Batch, allocate_batch
from skeldir.domains.attribution.channels import channel_sort_key
from skeldir.domains.attribution.model_settings import ModelSettings
from skeldir.domains.attribution.models import RULE_BASED_MODELS, Touchpoint
from skeldir.domains.attribution.reference import reference_credits

# A vocabulary with "direct", default channels and two custom ones (sorting after the defaults).
VOCABULARY = tuple(
    sorted(
        ["direct", "paid_search", "email", "organic_social", "referral", "affiliate", "display",
         "unknown", "podcast", "zz_custom"],
        key=channel_sort_key,
    )
)
LEARNED_MODELS = ("markov", "shapley")
MODELS = RULE_BASED_MODELS + LEARNED_MODELS
SECOND_US = 10**6
DAY_US = 86400 * SECOND_US
ORDERED_AT = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)

engine_settings = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass
class Order:
    path: list[tuple[int, int]]  # (age_us, channel index), canonical: age descending, channel
    entries: list[tuple[int, bool]] = field(default_factory=list)  # (amount, is_sale)


@dataclass
class Case:
    settings: ModelSettings
    orders: list[Order]


# --- strategies -----------------------------------------------------------------------------

half_lives = st.one_of(
    st.sampled_from([1, 60, 3600, 86400, 7 * 86400, 30 * 86400]).map(
        lambda s: timedelta(seconds=s)
    ),
    st.integers(SECOND_US, 30 * DAY_US).map(lambda us: timedelta(microseconds=us)),
)

weight_values = st.one_of(
    st.just(0.0),
    st.sampled_from([0.1, 0.25, 0.5, 0.2, 1 / 3, 0.3, 1.0]),
    st.floats(min_value=0, max_value=1, allow_nan=False),
    st.floats(min_value=0, max_value=1e-6, allow_nan=False),
)


@st.composite
def learned_maps(draw) -> dict[str, float]:
    kind = draw(st.sampled_from(["mixed", "mixed", "mixed", "all_zero", "empty", "ties"]))
    if kind == "empty":
        return {}
    # Only some channels appear: the others are missing from the mapping (weight zero).
    present = draw(st.lists(st.sampled_from(VOCABULARY), unique=True, max_size=len(VOCABULARY)))
    if kind == "all_zero":
        return {channel: 0.0 for channel in present}
    if kind == "ties":
        value = draw(st.sampled_from([0.1, 0.25, 1 / 3]))
        return {channel: value for channel in present}
    return {channel: draw(weight_values) for channel in present}


@st.composite
def ages(draw, half_life_us: int, previous: int | None) -> int:
    if previous is not None and draw(st.integers(0, 4)) == 0:
        return previous  # an equal age: an exact tie
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(st.integers(0, 1200)) * half_life_us  # maybe too far apart for floats
    if kind == 1:
        return draw(st.integers(0, 60 * DAY_US))
    return draw(
        st.one_of(
            st.just(0),
            st.integers(0, 40).map(lambda k: k * half_life_us),  # whole half-lives
            st.integers(0, 20 * half_life_us),
            st.integers(0, SECOND_US),
        )
    )


@st.composite
def amounts(draw) -> int:
    kind = draw(st.integers(0, 24))
    if kind == 0:
        # Occasional huge amounts take the reference path; beyond 2**53 no float is exact.
        return draw(
            st.one_of(st.integers(MAX_VECTOR_AMOUNT, 2**53 + 10), st.integers(2**53, 2**60))
        )
    if kind == 1:
        return 0
    if kind < 8:
        return draw(st.integers(0, 1000))
    return draw(st.integers(0, 10**9))


@st.composite
def orders(draw, half_life_us: int) -> Order:
    size = draw(st.integers(1, 12))
    path = []
    previous = None
    for _ in range(size):
        previous = draw(ages(half_life_us, previous))
        path.append((previous, draw(st.integers(0, len(VOCABULARY) - 1))))
    path.sort(key=lambda tp: (-tp[0], tp[1]))
    entries = []
    for _ in range(draw(st.integers(1, 3))):
        amount = draw(amounts())
        if draw(st.integers(0, 2)) == 0:
            entries.append((-amount, False))  # a refund or cancellation
        else:
            entries.append((amount, True))
    return Order(path, entries)


@st.composite
def cases(draw, max_orders: int = 30) -> Case:
    half_life = draw(half_lives)
    learned = {model: draw(learned_maps()) for model in LEARNED_MODELS}
    half_life_us = half_life // timedelta(microseconds=1)
    batch_orders = draw(st.lists(orders(half_life_us), min_size=1, max_size=max_orders))
    return Case(ModelSettings(VOCABULARY, half_life, MODELS, learned), batch_orders)


# --- helpers --------------------------------------------------------------------------------


def to_batch(batch_orders: list[Order], entry_permutation: list[int] | None = None) -> Batch:
    offsets, channel, age = [0], [], []
    entries = []
    for index, order in enumerate(batch_orders):
        for a, c in order.path:
            age.append(a)
            channel.append(c)
        offsets.append(len(channel))
        entries.extend((index, amount, sale) for amount, sale in order.entries)
    if entry_permutation is not None:
        entries = [entries[i] for i in entry_permutation]
    return Batch(
        np.array(offsets, dtype=np.int64),
        np.array(channel, dtype=np.int64),
        np.array(age, dtype=np.int64),
        np.array([e[0] for e in entries], dtype=np.int64),
        np.array([e[1] for e in entries], dtype=np.int64),
        np.array([e[2] for e in entries], dtype=bool),
    )


def reference(order: Order, engine: ModelSettings) -> dict[str, tuple[list[int], list[int]]]:
    path = [
        Touchpoint(
            engine.channels[c], ORDERED_AT - timedelta(microseconds=a), f"{position:06d}"
        )
        for position, (a, c) in enumerate(order.path)
    ]
    return reference_credits(
        path,
        ORDERED_AT,
        [amount for amount, _ in order.entries],
        [sale for _, sale in order.entries],
        engine,
    )


def per_order(credits, batch: Batch, index: int, model: str) -> tuple[list[int], list[int]]:
    start, end = int(batch.offsets[index]), int(batch.offsets[index + 1])
    return credits.net[model][start:end].tolist(), credits.gross[model][start:end].tolist()


def single(path: list[tuple[int, str]], entries: list[tuple[int, bool]], learned=None, **kw):
    """One order's credits per model from the batch engine and from the reference."""
    engine = ModelSettings(
        VOCABULARY, kw.get("half_life", timedelta(days=7)), MODELS,
        learned or {model: {} for model in LEARNED_MODELS},
    )
    order = Order([(a, VOCABULARY.index(c)) for a, c in path], entries)
    batch = to_batch([order])
    credits = allocate_batch(batch, engine)
    ours = {model: per_order(credits, batch, 0, model) for model in MODELS}
    assert ours == reference(order, engine)
    return ours


# --- properties -----------------------------------------------------------------------------


@engine_settings
@given(cases())
def test_the_batch_engine_gives_the_references_cents_for_every_order_and_model(case: Case):
    batch = to_batch(case.orders)
    credits = allocate_batch(batch, case.settings)
    assert set(credits.net) == set(credits.gross) == set(MODELS)
    for model in MODELS:
        assert credits.net[model].dtype == np.int64
        assert len(credits.net[model]) == len(credits.gross[model]) == len(batch.channel)
    for index, order in enumerate(case.orders):
        expected = reference(order, case.settings)
        for model in MODELS:
            assert per_order(credits, batch, index, model) == expected[model], (index, model)


@engine_settings
@given(cases())
def test_each_models_credits_sum_exactly_to_the_orders_revenue_and_sales(case: Case):
    batch = to_batch(case.orders)
    credits = allocate_batch(batch, case.settings)
    for index, order in enumerate(case.orders):
        revenue = sum(amount for amount, _ in order.entries)
        sales = sum(amount for amount, sale in order.entries if sale)
        for model in MODELS:
            net, gross = per_order(credits, batch, index, model)
            assert (sum(net), sum(gross)) == (revenue, sales), (index, model)


@engine_settings
@given(cases(max_orders=12), st.randoms(use_true_random=False))
def test_the_order_of_orders_and_entries_in_a_batch_changes_no_orders_credits(case: Case, rng):
    batch = to_batch(case.orders)
    credits = allocate_batch(batch, case.settings)
    permutation = list(range(len(case.orders)))
    rng.shuffle(permutation)
    shuffled_orders = [case.orders[i] for i in permutation]
    entries = sum(len(order.entries) for order in case.orders)
    entry_permutation = list(range(entries))
    rng.shuffle(entry_permutation)
    shuffled = to_batch(shuffled_orders, entry_permutation)
    shuffled_credits = allocate_batch(shuffled, case.settings)
    for new_index, old_index in enumerate(permutation):
        for model in MODELS:
            assert per_order(shuffled_credits, shuffled, new_index, model) == per_order(
                credits, batch, old_index, model
            ), (old_index, model)


def test_an_empty_batch_has_no_credits():
    engine = ModelSettings(VOCABULARY, timedelta(days=7), MODELS, {m: {} for m in LEARNED_MODELS})
    empty = np.zeros(0, dtype=np.int64)
    credits = allocate_batch(
        Batch(np.zeros(1, dtype=np.int64), empty, empty, empty, empty, np.zeros(0, dtype=bool)),
        engine,
    )
    assert credits.reference_orders == 0
    assert all(len(credits.net[m]) == len(credits.gross[m]) == 0 for m in MODELS)


# --- hand cases -----------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, 1, 999, 10**9, MAX_VECTOR_AMOUNT + 3])
def test_a_single_touchpoint_gets_everything(amount):
    learned = {"markov": {"email": 0.3}, "shapley": {}}
    ours = single([(5 * SECOND_US, "email")], [(amount, True), (-(amount // 3), False)],
                  learned)
    net = amount - amount // 3
    assert ours == {model: ([net], [amount]) for model in MODELS}


def test_last_non_direct_credits_the_last_non_direct_or_else_the_last():
    path = [(3 * DAY_US, "email"), (2 * DAY_US, "direct"), (DAY_US, "direct")]
    assert single(path, [(500, True)])["last_non_direct"] == ([500, 0, 0], [500, 0, 0])
    all_direct = [(3 * DAY_US, "direct"), (2 * DAY_US, "direct"), (DAY_US, "direct")]
    ours = single(all_direct, [(500, True), (-120, False)])
    assert ours["last_non_direct"] == ([0, 0, 380], [0, 0, 500])
    assert ours["last_touch"] == ours["last_non_direct"]
    assert ours["first_touch"] == ([380, 0, 0], [500, 0, 0])


def test_equal_weights_split_100_cents_34_33_33_extra_cent_by_fixed_channel_order():
    # On the path, email comes first and direct last; in the fixed channel order direct comes
    # first, then paid_search, then email: so the extra cent goes to direct.
    path = [(3 * DAY_US, "email"), (2 * DAY_US, "paid_search"), (DAY_US, "direct")]
    tied = {channel: 0.25 for channel in ("email", "paid_search", "direct")}
    ours = single(path, [(100, True)], {"markov": tied, "shapley": dict(tied)})
    assert ours["markov"] == ours["shapley"] == ([33, 33, 34], [33, 33, 34])
    # Linear ties go by position along the path.
    assert ours["linear"] == ([34, 33, 33], [34, 33, 33])
    # A refund mirrors the sale.
    refunded = single(path, [(100, True), (-100, False)], {"markov": tied, "shapley": tied})
    assert refunded["markov"] == ([0, 0, 0], [33, 33, 34])


def test_equal_ages_tie_in_time_decay_and_go_by_position():
    path = [(DAY_US, "email"), (DAY_US, "paid_search"), (DAY_US, "podcast")]
    assert single(path, [(100, True)])["time_decay"] == ([34, 33, 33], [34, 33, 33])


def test_whole_half_lives_halve_the_time_decay_weight():
    half_life = timedelta(days=1)
    path = [(2 * DAY_US, "email"), (DAY_US, "referral"), (0, "direct")]
    ours = single(path, [(700, True)], half_life=half_life)
    assert ours["time_decay"] == ([100, 200, 400], [100, 200, 400])


def test_weightless_paths_split_linearly_over_touchpoints():
    path = [(3 * DAY_US, "email"), (2 * DAY_US, "email"), (DAY_US, "zz_custom")]
    learned = {"markov": {"email": 0.0, "display": 0.5}, "shapley": {}}
    ours = single(path, [(100, True)], learned)
    assert ours["markov"] == ours["shapley"] == ([34, 33, 33], [34, 33, 33])


def test_a_channel_share_splits_over_its_own_touchpoints():
    path = [(3 * DAY_US, "email"), (2 * DAY_US, "paid_search"), (DAY_US, "email")]
    learned = {"markov": {"email": 0.6, "paid_search": 0.4}, "shapley": {"email": 0.1}}
    ours = single(path, [(1001, True)], learned)
    assert ours["markov"][0] == [301, 400, 300]
    assert ours["shapley"][0] == [501, 0, 500]


# --- packing --------------------------------------------------------------------------------


@dataclass
class Credited:
    """Arbitrary per-touchpoint credits, shaped like the engine's."""

    net: dict[str, np.ndarray]
    gross: dict[str, np.ndarray]


@st.composite
def credited_batches(draw) -> tuple[Batch, Credited, tuple[str, ...]]:
    models = tuple(draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=4, unique=True)))
    lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=20))
    total = sum(lengths)
    channel = np.array(
        [draw(st.integers(0, len(VOCABULARY) - 1)) for _ in range(total)], dtype=np.int64
    )
    credit = st.one_of(st.integers(-(10**9), 10**9), st.integers(-(2**58), 2**58), st.just(0))
    values = {
        kind: {m: np.array([draw(credit) for _ in range(total)], dtype=np.int64) for m in models}
        for kind in ("net", "gross")
    }
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    empty = np.zeros(0, dtype=np.int64)
    batch = Batch(offsets, channel, np.zeros(total, dtype=np.int64), empty, empty,
                  np.zeros(0, dtype=bool))
    return batch, Credited(values["net"], values["gross"]), models


def by_channel_sums(batch: Batch, credits, models, index: int) -> dict[int, list[list[int]]]:
    """channel -> [net per model, gross per model], summed in Python integers."""
    start, end = int(batch.offsets[index]), int(batch.offsets[index + 1])
    sums: dict[int, list[list[int]]] = {}
    for tp in range(start, end):
        channel = int(batch.channel[tp])
        entry = sums.setdefault(channel, [[0] * len(models), [0] * len(models)])
        for m, model in enumerate(models):
            entry[0][m] += int(credits.net[model][tp])
            entry[1][m] += int(credits.gross[model][tp])
    return sums


def check_packing(batch: Batch, credits, models) -> None:
    tp_order = np.repeat(np.arange(batch.orders), np.diff(batch.offsets))
    packed = packing.pack(
        batch.orders,
        tp_order,
        batch.channel,
        [credits.net[m] for m in models],
        [credits.gross[m] for m in models],
    )
    encoded = packed.encoded()
    assert len(encoded) == batch.orders
    for index in range(batch.orders):
        channels = packed.channels(index).tolist()
        expected = by_channel_sums(batch, credits, models, index)
        assert channels == sorted(expected), "one entry per channel, in the fixed channel order"
        assert encoded[index] == packed.credits(index)
        assert len(encoded[index]) == 16 * len(models) * len(channels)
        values = packing.unpack(encoded[index], len(models), len(channels))
        assert values.tolist() == [expected[c] for c in channels]
        assert np.array_equal(values, packed.values[packed.first[index] : packed.first[index + 1]])
        # The layout SQL's credit_minor reads: (channel * 2 + kind) * models + model.
        raw = encoded[index]
        for c, channel in enumerate(channels):
            for kind in (0, 1):
                for m in range(len(models)):
                    at = ((c * 2 + kind) * len(models) + m) * 8
                    value = int.from_bytes(raw[at : at + 8], "big", signed=True)
                    assert value == expected[channel][kind][m]


@engine_settings
@given(cases())
def test_packing_round_trips_and_sums_credits_by_channel(case: Case):
    batch = to_batch(case.orders)
    credits = allocate_batch(batch, case.settings)
    check_packing(batch, credits, MODELS)
    # A subset of models, in another order, packs alike.
    check_packing(batch, credits, ("shapley", "linear"))


def test_packing_keeps_credits_beyond_2_to_the_53_exact():
    engine = ModelSettings(VOCABULARY, timedelta(days=7), MODELS, {m: {} for m in LEARNED_MODELS})
    order = Order([(0, VOCABULARY.index("email"))], [(10**16 + 1, True)])
    batch = to_batch([order])
    credits = allocate_batch(batch, engine)
    assert credits.net["linear"].tolist() == [10**16 + 1]  # the engine itself is exact
    check_packing(batch, credits, MODELS)


@settings(max_examples=150, deadline=None)
@given(credited_batches())
def test_packing_sums_any_int64_credits_exactly(case):
    batch, credits, models = case
    check_packing(batch, credits, models)


@settings(max_examples=100, deadline=None)
@given(credited_batches(), st.data())
def test_channel_day_changes_add_exactly_and_take_back_to_nothing(case, data):
    batch, credits, models = case
    tp_order = np.repeat(np.arange(batch.orders), np.diff(batch.offsets))
    packed = packing.pack(batch.orders, tp_order, batch.channel,
                          [credits.net[m] for m in models], [credits.gross[m] for m in models])
    groups = [("2026-03-01", "USD"), ("2026-03-02", "USD"), ("2026-03-01", "EUR")]
    order_group = np.array(
        [data.draw(st.integers(0, len(groups) - 1)) for _ in range(batch.orders)], dtype=np.int64
    )
    pair_order = np.repeat(np.arange(batch.orders), np.diff(packed.first))
    changes = packing.ChannelDayChanges.empty()
    changes.add(groups, order_group[pair_order], packed.pair_channel, VOCABULARY, models,
                packed.values, 1)
    expected: dict[tuple, list[int]] = {}
    for pair, order in enumerate(pair_order.tolist()):
        day, currency = groups[int(order_group[order])]
        channel = VOCABULARY[int(packed.pair_channel[pair])]
        for m, model in enumerate(models):
            net, gross = int(packed.values[pair, 0, m]), int(packed.values[pair, 1, m])
            totals = expected.setdefault((day, currency, model, channel), [0, 0, 0, 0])
            for field, value in enumerate((gross, gross - net, net, int(gross != 0))):
                totals[field] += value
    assert sorted(changes.rows()) == sorted(
        (*key, *totals) for key, totals in expected.items() if any(totals)
    )
    changes.add(groups, order_group[pair_order], packed.pair_channel, VOCABULARY, models,
                packed.values, -1)
    assert changes.rows() == []
