from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skeldir.domains.attribution.apportion import largest_remainder

totals = st.integers(min_value=-10**12, max_value=10**12)
weight_lists = st.lists(
    st.fractions(min_value=0, max_value=1000, max_denominator=10**6), min_size=1, max_size=12
).filter(lambda weights: any(weights))


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (1050, [1, 1, 1], [350, 350, 350]),
        (1000, [1, 1, 1], [334, 333, 333]),
        (-1000, [1, 1, 1], [-334, -333, -333]),
        (2, [1, 1, 1], [1, 1, 0]),
        (0, [1, 2, 3], [0, 0, 0]),
        (1000, [Fraction(1), Fraction(1, 2)], [667, 333]),
        (1000, [Fraction(2, 5), Fraction(1, 10), Fraction(1, 10), Fraction(2, 5)],
         [400, 100, 100, 400]),
        (10, [0, 1, 0], [0, 10, 0]),
        (7, [1, 0, 1], [4, 0, 3]),
    ],
)
def test_examples(total, weights, expected):
    assert largest_remainder(total, weights) == expected


@pytest.mark.parametrize("weights", [[], [0], [0, 0, Fraction(0)]])
def test_empty_or_all_zero_weights_are_rejected(weights):
    with pytest.raises(ValueError):
        largest_remainder(100, weights)


def test_negative_weight_is_rejected():
    with pytest.raises(ValueError):
        largest_remainder(100, [1, -1, 1])


@pytest.mark.parametrize("weights", [[0.5, 0.5], [True, 1]])
def test_inexact_weights_are_rejected(weights):
    with pytest.raises(TypeError):
        largest_remainder(100, weights)


def test_float_total_is_rejected():
    with pytest.raises(TypeError):
        largest_remainder(10.0, [1, 1])


@given(totals, weight_lists)
def test_parts_sum_to_total(total, weights):
    assert sum(largest_remainder(total, weights)) == total


@given(totals, weight_lists)
def test_refund_mirrors_sale(total, weights):
    sale = largest_remainder(total, weights)
    assert largest_remainder(-total, weights) == [-part for part in sale]


@given(totals, weight_lists)
def test_parts_are_within_one_unit_of_exact_share(total, weights):
    weight_sum = sum(weights)
    for part, weight in zip(largest_remainder(total, weights), weights):
        assert abs(part - total * weight / weight_sum) < 1


@given(totals, weight_lists)
def test_zero_weights_get_nothing_and_signs_follow_total(total, weights):
    for part, weight in zip(largest_remainder(total, weights), weights):
        if weight == 0:
            assert part == 0
        assert part * total >= 0


@given(totals, weight_lists, st.integers(min_value=1, max_value=1000))
def test_scaling_weights_changes_nothing(total, weights, factor):
    scaled = [weight * factor for weight in weights]
    assert largest_remainder(total, scaled) == largest_remainder(total, weights)
