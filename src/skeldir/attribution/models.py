"""Rule-based attribution models: exact weights over a path, apportioned into integer cents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Context, Decimal
from fractions import Fraction
from types import MappingProxyType

from skeldir.attribution.apportion import largest_remainder
from skeldir.attribution.channels import channel_sort_key

RULE_BASED_MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
)
# Bump a model's version whenever its credit rule changes, so stored rows say which rule made them.
MODEL_VERSION: Mapping[str, int] = MappingProxyType({model: 1 for model in RULE_BASED_MODELS})

DEFAULT_HALF_LIFE = timedelta(days=7)
DEFAULT_LOOKBACK = timedelta(days=30)
_MICROSECOND = timedelta(microseconds=1)
# Software decimal arithmetic gives the same digits on every platform, unlike libm's pow().
_DECAY_CONTEXT = Context(prec=30)


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
        if half_life <= timedelta(0):
            raise ValueError(f"half_life must be positive, got {half_life}")
        return [_decay(converted_at - tp.occurred_at, half_life) for tp in path]
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
    if isinstance(revenue_minor, bool) or not isinstance(revenue_minor, int):
        raise TypeError(f"revenue_minor must be an int, got {type(revenue_minor).__name__}")
    if not path:
        if not fallback_channel:
            raise ValueError("fallback_channel must be a channel name")
        return [Credit(fallback_channel, revenue_minor, None)]
    weights = model_weights(model, path, converted_at, half_life=half_life)
    parts = largest_remainder(revenue_minor, weights)
    return [
        Credit(tp.channel, part, index)
        for index, (tp, weight, part) in enumerate(zip(path, weights, parts))
        if weight
    ]


def _decay(age: timedelta, half_life: timedelta) -> Fraction:
    """2 ** -(age / half_life): whole half-lives exactly, the rest to 30 significant digits."""
    half_lives = Fraction(age // _MICROSECOND, half_life // _MICROSECOND)
    whole = half_lives.numerator // half_lives.denominator
    rest = half_lives - whole
    weight = Fraction(1, 2**whole)
    if rest:
        exponent = _DECAY_CONTEXT.divide(Decimal(-rest.numerator), Decimal(rest.denominator))
        weight *= Fraction(_DECAY_CONTEXT.power(Decimal(2), exponent))
    return weight


def _canonical_key(tp: Touchpoint) -> tuple[datetime, tuple[int, str], bool, str]:
    has_id = tp.touchpoint_id is not None
    return (tp.occurred_at, channel_sort_key(tp.channel), has_id, tp.touchpoint_id or "")


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
