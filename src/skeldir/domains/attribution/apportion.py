"""Split an integer amount of minor units into parts proportional to exact weights."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction


def largest_remainder(total: int, weights: Sequence[Fraction | int]) -> list[int]:
    """Return integer parts of `total`, proportional to `weights`, that sum exactly to `total`.

    Each part is the floor of its exact share; the units still missing go one each to the
    parts with the largest fractional remainders, ties to the lower index. A negative total
    (a refund) is split as its magnitude and negated, so it mirrors the sale exactly.

    Raises ValueError when the weights are empty, negative or all zero, and TypeError for
    non-exact weights (floats).
    """
    if isinstance(total, bool) or not isinstance(total, int):
        raise TypeError(f"total must be an int of minor units, got {type(total).__name__}")
    exact_weights = [_exact_weight(weight) for weight in weights]
    weight_sum = sum(exact_weights, Fraction(0))
    if weight_sum == 0:
        raise ValueError("weights must not be empty or all zero")

    magnitude = abs(total)
    shares = [magnitude * weight / weight_sum for weight in exact_weights]
    parts = [share.numerator // share.denominator for share in shares]
    missing_units = magnitude - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda index: (-(shares[index] % 1), index))
    for index in by_remainder[:missing_units]:
        parts[index] += 1

    sign = -1 if total < 0 else 1
    return [sign * part for part in parts]


def _exact_weight(weight: Fraction | int) -> Fraction:
    if isinstance(weight, bool) or not isinstance(weight, (int, Fraction)):
        raise TypeError(f"weights must be int or Fraction, got {type(weight).__name__}")
    if weight < 0:
        raise ValueError(f"weights must be non-negative, got {weight}")
    return Fraction(weight)
