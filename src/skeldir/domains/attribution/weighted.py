"""Learned per-channel weights: normalising them, and splitting one order's revenue by them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from numbers import Rational, Real

from skeldir.domains.attribution.apportion import largest_remainder
from skeldir.domains.attribution.channels import channel_sort_key

# Float weights become exact fractions this fine, so the same floats always give the same cents.
WEIGHT_DENOMINATOR_LIMIT = 10**12


def normalise(values: Mapping[str, float]) -> dict[str, float]:
    """`values` scaled to sum to 1, keys in the same order; all zero when they sum to zero."""
    total = math.fsum(values.values())
    if total <= 0:
        return {channel: 0.0 for channel in values}
    return {channel: value / total for channel, value in values.items()}


def weighted_credits(
    path_channels: Sequence[str], weights: Mapping[str, float], revenue_minor: int
) -> list[int]:
    """Minor units per touchpoint of a canonical path, summing exactly to `revenue_minor`.

    Each distinct channel on the path gets a share proportional to its weight (a channel
    missing from `weights` weighs zero), however often it appears; ties in cents go by the
    fixed channel order. A channel's share is then split equally over its own touchpoints,
    ties to the earlier one. When every channel on the path weighs zero, the revenue is
    split linearly over the touchpoints. Negative revenue (a refund) mirrors the sale.
    """
    if isinstance(revenue_minor, bool) or not isinstance(revenue_minor, int):
        raise TypeError(f"revenue_minor must be an int, got {type(revenue_minor).__name__}")
    if isinstance(path_channels, str):
        raise TypeError("path_channels must be a sequence of channel names, not one string")
    if not path_channels:
        raise ValueError("a path needs at least one touchpoint")
    channels = sorted(set(path_channels), key=channel_sort_key)
    exact = [exact_weight(weights.get(channel, 0)) for channel in channels]
    if not any(exact):
        return largest_remainder(revenue_minor, [1] * len(path_channels))

    credits = [0] * len(path_channels)
    for channel, channel_minor in zip(channels, largest_remainder(revenue_minor, exact)):
        positions = [index for index, name in enumerate(path_channels) if name == channel]
        for index, part in zip(positions, largest_remainder(channel_minor, [1] * len(positions))):
            credits[index] = part
    return credits


def exact_weight(weight: Real) -> Fraction:
    """The exact fraction a learned weight stands for; rejects negative and non-finite ones."""
    if isinstance(weight, bool) or not isinstance(weight, Real):
        raise TypeError(f"a weight must be a real number, got {type(weight).__name__}")
    if not isinstance(weight, Rational):
        weight = float(weight)
        if not math.isfinite(weight):
            raise ValueError(f"a weight must be finite, got {weight!r}")
    if weight < 0:
        raise ValueError(f"a weight must not be negative, got {weight!r}")
    return Fraction(weight).limit_denominator(WEIGHT_DENOMINATOR_LIMIT)
