"""Every model's credits for a whole batch of orders at once, in NumPy.

The per-order functions (`models.allocate`, `weighted.weighted_credits`) define the cents; this
module computes the same cents for thousands of orders in a few array passes, because Python
work per order, not arithmetic, bounds a recompute. Integer models (first, last, last non-direct,
linear, position based) are exact in int64. Time decay and the learned-weight models split by
irrational or huge-denominator weights: their shares are computed in float64 with an error bound,
and any order where a share lies within that bound of a rounding decision (a floor, or the cut
between the remainders that get a unit and those that do not) is recomputed by the per-order
reference, as are orders with amounts too large for the bound. So the result is always the
reference's, bit for bit (property tests hold the two equal).

Shapes: N orders, T touchpoints (each order's canonical path, concatenated), E revenue entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from skeldir.domains.attribution.model_settings import LearnedWeights, ModelSettings
from skeldir.domains.attribution.models import RULE_BASED_MODELS, Touchpoint
from skeldir.domains.attribution.reference import reference_credits

# Entries at or above this magnitude (about 11 billion in major units) take the reference path,
# which keeps every float product and every float sum of cents exact.
MAX_VECTOR_AMOUNT = 1 << 40
# Orders with more entries than this take the reference path (sums stay below 2^53).
MAX_VECTOR_ENTRIES = 1 << 12
# Time-decay weights more than this many half-lives apart would underflow a float64.
_MAX_HALF_LIVES_APART = 900
# Relative error bound of a float64 share, per touchpoint of the path, with a wide margin: a
# share's few roundings cost a few units of 2^-53 each.
_RELATIVE_ERROR = 2.0**-44
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Batch:
    """Canonical paths and revenue entries of N orders, flattened."""

    offsets: np.ndarray  # int64[N + 1]: order i's path is touchpoints offsets[i]:offsets[i + 1]
    channel: np.ndarray  # int64[T]: index into Vocabulary.channels
    age_us: np.ndarray  # int64[T]: order time minus touchpoint time, in microseconds (>= 0)
    entry_order: np.ndarray  # int64[E]: the order of each revenue entry
    entry_amount: np.ndarray  # int64[E]: minor units, negative for refunds and cancellations
    entry_is_sale: np.ndarray  # bool[E]
    # int64[T]: each touchpoint's campaign grain, an index into the names the batch was read
    # with (batch_arrays); the models never read it.
    grain: np.ndarray | None = None

    @property
    def orders(self) -> int:
        return len(self.offsets) - 1


@dataclass(frozen=True)
class Credits:
    """Per model, each touchpoint's net credit and its credit from sales alone."""

    net: dict[str, np.ndarray]  # model -> int64[T]
    gross: dict[str, np.ndarray]
    # Orders the per-order reference computed (a share too close to a rounding decision).
    reference_orders: int


def allocate_batch(batch: Batch, settings: ModelSettings) -> Credits:
    if batch.orders == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Credits({m: empty for m in settings.models}, {m: empty for m in settings.models}, 0)
    shape = _Shape.of(batch)
    fallback = np.zeros(batch.orders, dtype=bool)
    magnitude = np.abs(batch.entry_amount)
    fallback[batch.entry_order[magnitude >= MAX_VECTOR_AMOUNT]] = True
    entries_per_order = np.bincount(batch.entry_order, minlength=batch.orders)
    fallback |= entries_per_order > MAX_VECTOR_ENTRIES
    sign = np.where(batch.entry_amount < 0, -1, 1)[shape.x_entry]
    is_sale = batch.entry_is_sale[shape.x_entry]
    x_magnitude = magnitude[shape.x_entry]

    net: dict[str, np.ndarray] = {}
    gross: dict[str, np.ndarray] = {}
    for model in settings.models:
        if model in RULE_BASED_MODELS:
            parts = _rule_based(model, batch, shape, x_magnitude, settings, fallback)
        else:
            parts = _learned(settings.learned_weights(model), batch, shape, x_magnitude, fallback)
        signed = (parts * sign).astype(np.float64)
        total = len(batch.channel)
        net[model] = np.bincount(shape.x_tp, weights=signed, minlength=total).astype(np.int64)
        gross[model] = np.bincount(
            shape.x_tp[is_sale], weights=signed[is_sale], minlength=total
        ).astype(np.int64)

    reference = np.flatnonzero(fallback)
    for order in reference:
        _reference_order(int(order), batch, settings, net, gross)
    return Credits(net, gross, len(reference))


@dataclass(frozen=True)
class _Shape:
    """Each entry paired with each touchpoint of its order's path (the "x" elements)."""

    n: np.ndarray  # int64[N] path length
    tp_order: np.ndarray  # int64[T]
    tp_pos: np.ndarray  # int64[T] position in its path
    x_entry: np.ndarray  # int64[X]
    x_start: np.ndarray  # int64[X] first x element of the same entry
    x_pos: np.ndarray  # int64[X]
    x_tp: np.ndarray  # int64[X]
    x_n: np.ndarray  # int64[X]
    entry_start: np.ndarray  # int64[E]

    @classmethod
    def of(cls, batch: Batch) -> _Shape:
        n = np.diff(batch.offsets)
        if len(n) and n.min() < 1:
            raise ValueError("every order needs a path of at least one touchpoint")
        tp_order = np.repeat(np.arange(batch.orders), n)
        tp_pos = np.arange(len(batch.channel)) - batch.offsets[:-1][tp_order]
        entry_n = n[batch.entry_order]
        entry_start = np.cumsum(entry_n) - entry_n
        x_entry = np.repeat(np.arange(len(batch.entry_order)), entry_n)
        x_start = entry_start[x_entry]
        x_pos = np.arange(len(x_entry)) - x_start
        x_tp = batch.offsets[:-1][batch.entry_order][x_entry] + x_pos
        return cls(n, tp_order, tp_pos, x_entry, x_start, x_pos, x_tp, entry_n[x_entry], entry_start)


def _rule_based(
    model: str,
    batch: Batch,
    shape: _Shape,
    magnitude: np.ndarray,
    settings: ModelSettings,
    fallback: np.ndarray,
) -> np.ndarray:
    if model == "first_touch":
        return magnitude * (shape.x_pos == 0)
    if model == "last_touch":
        return magnitude * (shape.x_pos == shape.x_n - 1)
    if model == "last_non_direct":
        direct = settings.channels.index("direct") if "direct" in settings.channels else -1
        candidate = np.where(batch.channel != direct, shape.tp_pos, -1)
        chosen = np.maximum.reduceat(candidate, batch.offsets[:-1]) if len(candidate) else candidate
        chosen = np.where(chosen < 0, shape.n - 1, chosen)
        return magnitude * (shape.x_pos == chosen[batch.entry_order][shape.x_entry])
    if model in ("linear", "position_based"):
        n = shape.x_n
        if model == "linear":
            weight, weight_sum = np.ones_like(n), n
        else:
            ends = (shape.x_pos == 0) | (shape.x_pos == n - 1)
            middle = n >= 3
            weight = np.where(middle & ends, 2 * (n - 2), 1)
            weight_sum = np.where(middle, 5 * (n - 2), n)
        product = magnitude * weight
        parts, remainders = np.divmod(product, weight_sum)
        return parts + _remainder_units(shape, batch, parts, remainders, magnitude)
    if model == "time_decay":
        return _time_decay(batch, shape, magnitude, settings.half_life, fallback)
    raise ValueError(f"unknown rule-based model {model!r}")


def _remainder_units(
    shape: _Shape, batch: Batch, parts: np.ndarray, remainders: np.ndarray, magnitude: np.ndarray
) -> np.ndarray:
    """1 for the elements whose entry still misses units, largest remainder first, ties to the
    earlier position (the largest-remainder rule)."""
    missing = magnitude[shape.entry_start] - np.bincount(
        shape.x_entry, weights=parts, minlength=len(batch.entry_order)
    ).astype(np.int64)
    ranked = np.lexsort((shape.x_pos, -remainders, shape.x_entry))
    rank = np.arange(len(ranked)) - shape.x_start[ranked]
    units = np.zeros(len(ranked), dtype=np.int64)
    units[ranked] = rank < missing[shape.x_entry[ranked]]
    return units


def _time_decay(
    batch: Batch, shape: _Shape, magnitude: np.ndarray, half_life: timedelta, fallback: np.ndarray
) -> np.ndarray:
    half_life_us = half_life // timedelta(microseconds=1)
    if half_life_us <= 0:
        raise ValueError(f"half_life must be positive, got {half_life}")
    if half_life_us >= 1 << 52 or not len(batch.channel):
        fallback[:] = True
        return np.zeros_like(magnitude)
    whole, rest = np.divmod(batch.age_us, half_life_us)
    youngest = np.minimum.reduceat(whole, batch.offsets[:-1])
    apart = whole - youngest[shape.tp_order]
    too_far = np.maximum.reduceat(apart, batch.offsets[:-1]) > _MAX_HALF_LIVES_APART
    fallback |= too_far
    weight = np.exp2(-(rest / half_life_us)) * np.exp2(-np.minimum(apart, _MAX_HALF_LIVES_APART))
    return _split_by_float_weights(
        weight[shape.x_tp],
        np.bincount(shape.tp_order, weights=weight, minlength=batch.orders),
        batch,
        shape.x_entry,
        shape.x_start,
        shape.x_pos,
        shape.x_n,
        magnitude,
        # Equal ages are equal exact weights: an exact tie the positions break.
        batch.age_us[shape.x_tp],
        fallback,
    )


def _split_by_float_weights(
    x_weight: np.ndarray,
    order_weight: np.ndarray,
    batch: Batch,
    x_entry: np.ndarray,
    x_start: np.ndarray,
    x_pos: np.ndarray,
    x_n: np.ndarray,
    magnitude: np.ndarray,
    x_exact_key: np.ndarray,
    fallback: np.ndarray,
    ignored: np.ndarray | None = None,
) -> np.ndarray:
    """Largest remainder over float weights, flagging orders whose cents the floats cannot
    decide. `x_exact_key` is equal exactly where the exact weights are equal. Orders marked
    `ignored` (their result is replaced by the caller) raise no flag."""
    x_order = batch.entry_order[x_entry]
    flags = np.zeros(batch.orders, dtype=bool)
    share = magnitude * (x_weight / order_weight[x_order])
    parts = np.floor(share)
    remainders = share - parts
    tolerance = (share + 1.0) * (x_n + 16) * _RELATIVE_ERROR
    positive = x_weight > 0
    entries = len(batch.entry_order)
    first = np.zeros(entries, dtype=np.int64)
    first[x_entry] = x_start
    positives = np.bincount(x_entry, weights=positive, minlength=entries).astype(np.int64)
    # Where every positive weight of an entry is exactly the same (one element alone, equal
    # ages, equal learned weights), the split is even over them: exact in integers, the
    # leftover units to the earlier ones (equal remainders, ranked by position below).
    key_low = np.minimum.reduceat(np.where(positive, x_exact_key, np.iinfo(np.int64).max), first)
    key_high = np.maximum.reduceat(np.where(positive, x_exact_key, np.iinfo(np.int64).min), first)
    even = (positive & (key_low == key_high)[x_entry])
    even_parts = magnitude // np.maximum(positives[x_entry], 1)
    parts = np.where(even, even_parts, np.where(positive, parts, 0)).astype(np.int64)
    remainders = np.where(even, 0.5, np.where(positive, remainders, 0.0))
    near_integer = (
        positive & ~even & (magnitude > 0) & ((remainders < tolerance) | (remainders > 1 - tolerance))
    )
    flags[x_order[near_integer]] = True

    missing = magnitude[first] - np.bincount(x_entry, weights=parts, minlength=entries).astype(
        np.int64
    )
    entry_n = np.zeros(entries, dtype=np.int64)
    entry_n[x_entry] = x_n
    flags[batch.entry_order[(missing < 0) | (missing >= np.maximum(entry_n, 1))]] = True
    missing = np.clip(missing, 0, entry_n)

    ranked = np.lexsort((x_pos, -remainders, x_entry))
    rank = np.arange(len(ranked)) - x_start[ranked]
    units = np.zeros(len(ranked), dtype=np.int64)
    units[ranked] = rank < missing[x_entry[ranked]]

    # The cut between the remainders given a unit and the rest: every remainder within the
    # error bound of it could sort to either side, so if such remainders come from different
    # exact weights (an exact tie with equal weights is broken by position, as the floats are
    # then equal too), the floats cannot decide.
    cut = (missing > 0) & (missing < entry_n)
    if cut.any():
        at_cut = np.flatnonzero(cut)
        entry_tolerance = np.maximum.reduceat(tolerance, first)
        lowest_given = np.full(entries, np.inf)
        highest_not_given = np.full(entries, -np.inf)
        lowest_given[at_cut] = remainders[ranked[first[at_cut] + missing[at_cut] - 1]]
        highest_not_given[at_cut] = remainders[ranked[first[at_cut] + missing[at_cut]]]
        band = 2 * entry_tolerance[x_entry]
        in_band = (remainders >= highest_not_given[x_entry] - band) & (
            remainders <= lowest_given[x_entry] + band
        )
        key_low = np.minimum.reduceat(np.where(in_band, x_exact_key, np.iinfo(np.int64).max), first)
        key_high = np.maximum.reduceat(np.where(in_band, x_exact_key, np.iinfo(np.int64).min), first)
        close = lowest_given - highest_not_given <= 2 * entry_tolerance
        flags[batch.entry_order[cut & close & (key_low != key_high)]] = True
    if ignored is not None:
        flags &= ~ignored
    fallback |= flags
    return parts + units


def _learned(
    weights: LearnedWeights, batch: Batch, shape: _Shape, magnitude: np.ndarray, fallback: np.ndarray
) -> np.ndarray:
    """weighted_credits: channels share by weight, then each share splits evenly over the
    channel's own touchpoints; a path whose channels all weigh nothing splits linearly."""
    vocabulary = int(batch.channel.max()) + 1 if len(batch.channel) else 1
    pair_key, tp_pair = np.unique(shape.tp_order * vocabulary + batch.channel, return_inverse=True)
    pair_order, pair_channel = np.divmod(pair_key, vocabulary)
    pair_count = np.bincount(tp_pair)
    by_pair = np.argsort(tp_pair, kind="stable")
    pair_first = np.cumsum(pair_count) - pair_count
    rank_in_pair = np.empty(len(tp_pair), dtype=np.int64)
    rank_in_pair[by_pair] = np.arange(len(by_pair)) - pair_first[tp_pair[by_pair]]

    pairs_per_order = np.bincount(pair_order, minlength=batch.orders)
    order_first_pair = np.cumsum(pairs_per_order) - pairs_per_order
    entry_k = pairs_per_order[batch.entry_order]
    entry_first_y = np.cumsum(entry_k) - entry_k
    y_entry = np.repeat(np.arange(len(batch.entry_order)), entry_k)
    y_start = entry_first_y[y_entry]
    y_index = np.arange(len(y_entry)) - y_start
    y_pair = order_first_pair[batch.entry_order][y_entry] + y_index
    pair_weight = weights.approx[pair_channel]
    order_weight = np.bincount(pair_order, weights=pair_weight, minlength=batch.orders)
    # A path whose channels all weigh nothing splits linearly (below); weigh its channels
    # alike meanwhile, so the split needs no special case.
    weightless = order_weight == 0
    pair_weight = np.where(weightless[pair_order], 1.0, pair_weight)
    order_weight = np.where(weightless, pairs_per_order, order_weight)

    channel_units = _split_by_float_weights(
        pair_weight[y_pair],
        order_weight,
        batch,
        y_entry,
        y_start,
        y_index,
        entry_k[y_entry],
        magnitude[shape.entry_start][y_entry] if len(y_entry) else magnitude[:0],
        weights.rank[pair_channel[y_pair]],
        fallback,
        ignored=weightless,
    )
    # Each x element takes its part of its (entry, channel) share.
    x_pair = tp_pair[shape.x_tp]
    x_y = entry_first_y[shape.x_entry] + (x_pair - order_first_pair[batch.entry_order][shape.x_entry])
    share = channel_units[x_y] if len(x_y) else channel_units[:0]
    quotient, leftover = np.divmod(share, pair_count[x_pair])
    parts = quotient + (rank_in_pair[shape.x_tp] < leftover)

    if weightless.any():
        linear = _rule_based("linear", batch, shape, magnitude, _NO_SETTINGS, fallback)
        x_weightless = weightless[batch.entry_order][shape.x_entry]
        parts = np.where(x_weightless, linear, parts)
    return parts


_NO_SETTINGS = ModelSettings(channels=(), half_life=timedelta(days=1), models=(), learned={})


def _reference_order(
    order: int,
    batch: Batch,
    settings: ModelSettings,
    net: dict[str, np.ndarray],
    gross: dict[str, np.ndarray],
) -> None:
    """One order through the per-order reference, overwriting its touchpoints' credits."""
    start, end = int(batch.offsets[order]), int(batch.offsets[order + 1])
    ordered_at = _EPOCH + timedelta(days=365 * 400)
    path = [
        Touchpoint(
            settings.channels[int(batch.channel[i])],
            ordered_at - timedelta(microseconds=int(batch.age_us[i])),
            f"{i - start:012d}",  # keeps the canonical order the batch already has
        )
        for i in range(start, end)
    ]
    mine = batch.entry_order == order
    amounts = [int(a) for a in batch.entry_amount[mine]]
    sales = [bool(s) for s in batch.entry_is_sale[mine]]
    for model, (net_parts, gross_parts) in reference_credits(
        path, ordered_at, amounts, sales, settings
    ).items():
        net[model][start:end] = net_parts
        gross[model][start:end] = gross_parts

