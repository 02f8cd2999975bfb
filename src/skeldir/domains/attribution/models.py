"""Rule-based attribution models: exact weights over a path, apportioned into integer cents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from types import MappingProxyType

from skeldir.domains.attribution.channels import channel_sort_key

RULE_BASED_MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
)
# Models whose channel weights are learned (markov, shapley): a tenant's orders are credited
# under them once it has learned weights.
DATA_DRIVEN_MODELS: tuple[str, ...] = ("markov", "shapley")
# Bump a model's version whenever its credit rule changes, so stored rows say which rule made them.
MODEL_VERSION: Mapping[str, int] = MappingProxyType({model: 1 for model in RULE_BASED_MODELS})

DEFAULT_HALF_LIFE = timedelta(days=7)
DEFAULT_LOOKBACK = timedelta(days=30)
_MICROSECOND = timedelta(microseconds=1)
_ONE_HOT_MODELS = frozenset({"first_touch", "last_touch", "last_non_direct"})

# Time decay in integer fixed point, so every platform gets the same bits (libm's pow() and
# exp() need not round alike). A weight 2^-(age/half_life), with age and half-life in whole
# microseconds, is split into whole half-lives w, kept exact as a power of two, and the
# fraction f in [0, 1), whose 2^-f becomes the DECAY_BITS-bit mantissa
# m = round(2^-f * 2^DECAY_BITS) in [2^(DECAY_BITS-1), 2^DECAY_BITS]; the weight is
# m / 2^(DECAY_BITS + w). 2^-f is worked out at _WORK_BITS bits: f to _WORK_BITS bits, a table
# of 2^(-i/2^_TABLE_BITS) for its top bits and a Taylor series of exp(-x) for the rest
# (x < ln2/2^_TABLE_BITS, so a handful of terms). The error before the final rounding is a
# few units of 2^-_WORK_BITS, so every weight is within a relative 2^-61 (< 4.4e-19) of the
# exact 2^-(age/half_life); whole half-lives and equal ages are exact. A cent can move only
# when an exact share lies within about revenue * 1e-18 of a rounding boundary.
DECAY_BITS = 62
_WORK_BITS = 96
_TABLE_BITS = 8
_LOW_MASK = (1 << (_WORK_BITS - _TABLE_BITS)) - 1
_ROUND_SHIFT = 2 * _WORK_BITS - DECAY_BITS
_ROUND_HALF = 1 << (_ROUND_SHIFT - 1)


@dataclass(frozen=True, slots=True)
class Touchpoint:
    channel: str
    occurred_at: datetime
    touchpoint_id: str | None = None


@dataclass(frozen=True, slots=True)
class Credit:
    """Minor units credited to a channel; the index points into `canonical_path` (None: no path)."""

    channel: str
    minor: int
    touchpoint_index: int | None


def canonical_path(
    path: Sequence[Touchpoint], converted_at: datetime, lookback: timedelta = DEFAULT_LOOKBACK
) -> tuple[Touchpoint, ...]:
    """The touchpoints inside [converted_at - lookback, converted_at], in the one fixed order."""
    _require_aware(converted_at, "converted_at")
    if lookback < timedelta(0):
        raise ValueError(f"lookback must not be negative, got {lookback}")
    for touchpoint in path:
        _require_aware(touchpoint.occurred_at, "Touchpoint.occurred_at")
    window_start = converted_at - lookback
    in_window = (tp for tp in path if window_start <= tp.occurred_at <= converted_at)
    return tuple(sorted(in_window, key=_canonical_key))


def model_weights(
    model: str,
    path: Sequence[Touchpoint],
    converted_at: datetime,
    *,
    half_life: timedelta = DEFAULT_HALF_LIFE,
) -> list[Fraction]:
    """Exact weight of each touchpoint of a non-empty canonical path under `model`."""
    if not path:
        raise ValueError("a model needs at least one touchpoint")
    count = len(path)
    if model == "first_touch":
        return [Fraction(index == 0) for index in range(count)]
    if model == "last_touch":
        return [Fraction(index == count - 1) for index in range(count)]
    if model == "last_non_direct":
        non_direct = [index for index, tp in enumerate(path) if tp.channel != "direct"]
        chosen = non_direct[-1] if non_direct else count - 1
        return [Fraction(index == chosen) for index in range(count)]
    if model == "linear":
        return [Fraction(1)] * count
    if model == "time_decay":
        half_life_us = _half_life_microseconds(half_life)
        weights = []
        for tp in path:
            whole, mantissa = _decay(converted_at - tp.occurred_at, half_life_us)
            weights.append(Fraction(mantissa, 1 << DECAY_BITS) / Fraction(2) ** whole)
        return weights
    if model == "position_based":
        if count <= 2:
            return [Fraction(1, count)] * count
        middle = Fraction(1, 5) / (count - 2)
        return [Fraction(2, 5)] + [middle] * (count - 2) + [Fraction(2, 5)]
    raise ValueError(f"unknown rule-based model {model!r}; expected one of {RULE_BASED_MODELS}")


def allocate(
    model: str,
    path: Sequence[Touchpoint],
    revenue_minor: int,
    converted_at: datetime,
    *,
    half_life: timedelta = DEFAULT_HALF_LIFE,
    lookback: timedelta = DEFAULT_LOOKBACK,
    fallback_channel: str = "direct",
) -> list[Credit]:
    """Credits summing exactly to `revenue_minor` (negative for refunds), in canonical order.

    Every touchpoint with a non-zero weight gets a Credit, even of 0 minor units, so a sale
    and its refund yield the same rows. With no touchpoint in the window, all revenue goes
    to `fallback_channel`.
    """
    if model not in RULE_BASED_MODELS:
        raise ValueError(f"unknown rule-based model {model!r}; expected one of {RULE_BASED_MODELS}")
    return _allocate_canonical(
        model,
        canonical_path(path, converted_at, lookback),
        revenue_minor,
        converted_at,
        half_life=half_life,
        fallback_channel=fallback_channel,
    )


def allocate_all(
    path: Sequence[Touchpoint],
    revenue_minor: int,
    converted_at: datetime,
    *,
    half_life: timedelta = DEFAULT_HALF_LIFE,
    lookback: timedelta = DEFAULT_LOOKBACK,
    fallback_channel: str = "direct",
) -> dict[str, list[Credit]]:
    """`allocate` for every rule-based model, keyed by model name in RULE_BASED_MODELS order."""
    canonical = canonical_path(path, converted_at, lookback)
    return {
        model: _allocate_canonical(
            model,
            canonical,
            revenue_minor,
            converted_at,
            half_life=half_life,
            fallback_channel=fallback_channel,
        )
        for model in RULE_BASED_MODELS
    }


def by_channel(credits: Sequence[Credit]) -> list[tuple[str, int]]:
    """Net minor units per channel, known channels in fixed order first; zero totals omitted."""
    totals: dict[str, int] = {}
    for credit in credits:
        totals[credit.channel] = totals.get(credit.channel, 0) + credit.minor
    return [
        (channel, totals[channel])
        for channel in sorted(totals, key=channel_sort_key)
        if totals[channel] != 0
    ]


def _allocate_canonical(
    model: str,
    path: tuple[Touchpoint, ...],
    revenue_minor: int,
    converted_at: datetime,
    *,
    half_life: timedelta,
    fallback_channel: str,
) -> list[Credit]:
    # The cents are exactly largest_remainder(revenue_minor, model_weights(...)), keeping the
    # touchpoints of non-zero weight, but worked out on integer weights in the same proportions:
    # Fractions cost far more than the rules themselves (tests hold the two routes equal).
    if isinstance(revenue_minor, bool) or not isinstance(revenue_minor, int):
        raise TypeError(f"revenue_minor must be an int, got {type(revenue_minor).__name__}")
    if not path:
        if not fallback_channel:
            raise ValueError("fallback_channel must be a channel name")
        return [Credit(fallback_channel, revenue_minor, None)]
    count = len(path)
    if model in _ONE_HOT_MODELS:
        chosen = _chosen_index(model, path)
        return [Credit(path[chosen].channel, revenue_minor, chosen)]
    if model == "linear" or (model == "position_based" and count <= 2):
        parts = _split_evenly(revenue_minor, count)
    elif model == "position_based":
        ends = 2 * (count - 2)  # 40 % : 20 % / (count - 2), scaled by 5 * (count - 2)
        parts = _apportion(revenue_minor, [ends] + [1] * (count - 2) + [ends])
    elif model == "time_decay":
        parts = _apportion(revenue_minor, _decay_weights(path, converted_at, half_life))
    else:
        raise ValueError(f"unknown rule-based model {model!r}; expected one of {RULE_BASED_MODELS}")
    return [Credit(tp.channel, part, index) for index, (tp, part) in enumerate(zip(path, parts))]


def _chosen_index(model: str, path: Sequence[Touchpoint]) -> int:
    """The one touchpoint a single-touch model credits."""
    if model == "first_touch":
        return 0
    if model == "last_non_direct":
        for index in range(len(path) - 1, -1, -1):
            if path[index].channel != "direct":
                return index
    return len(path) - 1


def _split_evenly(total: int, count: int) -> list[int]:
    """largest_remainder over equal weights: the leftover units go to the first parts."""
    quotient, leftover = divmod(-total if total < 0 else total, count)
    parts = [quotient + 1] * leftover + [quotient] * (count - leftover)
    return [-part for part in parts] if total < 0 else parts


def _apportion(total: int, weights: list[int]) -> list[int]:
    """largest_remainder for positive integer weights, without Fractions (the same parts).

    All shares magnitude * weight / weight_sum have one denominator, so one divmod gives each
    floor and remainder and remainders compare as integers; the sort is stable, so equal
    remainders keep the lower index first.
    """
    magnitude = -total if total < 0 else total
    weight_sum = sum(weights)
    parts = []
    remainders = []
    for weight in weights:
        part, remainder = divmod(magnitude * weight, weight_sum)
        parts.append(part)
        remainders.append(remainder)
    missing_units = magnitude - sum(parts)
    if missing_units:
        by_remainder = sorted(range(len(weights)), key=remainders.__getitem__, reverse=True)
        for index in by_remainder[:missing_units]:
            parts[index] += 1
    return [-part for part in parts] if total < 0 else parts


def _decay_weights(
    path: Sequence[Touchpoint], converted_at: datetime, half_life: timedelta
) -> list[int]:
    """Integer time-decay weights, in exactly the proportions of model_weights' fractions."""
    half_life_us = _half_life_microseconds(half_life)
    decays = [_decay(converted_at - tp.occurred_at, half_life_us) for tp in path]
    most = max(whole for whole, _ in decays)
    return [mantissa << (most - whole) for whole, mantissa in decays]


def _half_life_microseconds(half_life: timedelta) -> int:
    if half_life <= timedelta(0):
        raise ValueError(f"half_life must be positive, got {half_life}")
    return half_life // _MICROSECOND


def _decay(age: timedelta, half_life_us: int) -> tuple[int, int]:
    """(w, m) with 2 ** -(age / half_life) ~= m / 2 ** (DECAY_BITS + w); see DECAY_BITS."""
    whole, rest = divmod(age // _MICROSECOND, half_life_us)
    if not rest:
        return whole, 1 << DECAY_BITS
    fraction = (rest << _WORK_BITS) // half_life_us  # f in [0, 1), to _WORK_BITS bits
    top = fraction >> (_WORK_BITS - _TABLE_BITS)
    low = ((fraction & _LOW_MASK) * _LN2) >> _WORK_BITS  # (f - top / 2^_TABLE_BITS) * ln 2
    return whole, (_DECAY_TABLE[top] * _exp_neg(low) + _ROUND_HALF) >> _ROUND_SHIFT


def _exp_neg(x: int, bits: int = _WORK_BITS) -> int:
    """exp(-x / 2^bits) * 2^bits for 0 <= x <= ln 2 * 2^bits, by its Taylor series."""
    total = term = 1 << bits
    k = 1
    while term:
        term = ((term * x) >> bits) // k
        total = total - term if k & 1 else total + term
        k += 1
    return total


def _ln2(bits: int) -> int:
    """ln 2 * 2^bits to within one unit, from ln 2 = sum 1 / (k * 2^k), with 32 guard bits."""
    scale = bits + 32
    total = 0
    k = 1
    while term := (1 << scale) // (k << k):
        total += term
        k += 1
    return total >> 32


def _decay_table() -> tuple[int, ...]:
    """2^(-i / 2^_TABLE_BITS) to _WORK_BITS bits, worked out with 32 guard bits and rounded."""
    bits = _WORK_BITS + 32
    ln2 = _ln2(bits)
    return tuple(
        (_exp_neg((i * ln2) >> _TABLE_BITS, bits) + (1 << 31)) >> 32
        for i in range(1 << _TABLE_BITS)
    )


_LN2 = _ln2(_WORK_BITS)
_DECAY_TABLE = _decay_table()


def _canonical_key(tp: Touchpoint) -> tuple[datetime, tuple[int, str], bool, str]:
    has_id = tp.touchpoint_id is not None
    return (tp.occurred_at, channel_sort_key(tp.channel), has_id, tp.touchpoint_id or "")


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
