import math
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from skeldir.domains.attribution.apportion import largest_remainder
from skeldir.domains.attribution.channels import CHANNELS
from skeldir.domains.attribution.markov import markov_weights
from skeldir.domains.attribution.shapley import shapley_weights
from skeldir.domains.attribution.weighted import exact_weight, normalise, weighted_credits

NAMES = CHANNELS + ("podcast",)
paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=10)
weight_maps = st.dictionaries(
    st.sampled_from(NAMES),
    st.floats(min_value=0, max_value=1) | st.just(0.0),
    max_size=len(NAMES),
)
revenues = st.integers(min_value=-(10**9), max_value=10**9)


def by_channel(path, credits):
    totals: dict[str, int] = {}
    for channel, minor in zip(path, credits):
        totals[channel] = totals.get(channel, 0) + minor
    return totals


def test_normalise():
    assert normalise({"email": 3.0, "direct": 1.0}) == {"email": 0.75, "direct": 0.25}
    assert list(normalise({"email": 3.0, "direct": 1.0})) == ["email", "direct"]
    assert normalise({"email": 0.0}) == {"email": 0.0}
    assert normalise({}) == {}


def test_each_channel_once_then_split_over_its_touches():
    weights = {"email": 0.6, "paid_search": 0.4}
    assert weighted_credits(["email", "paid_search", "email"], weights, 1000) == [300, 400, 300]
    assert weighted_credits(["email", "paid_search", "email"], weights, 1001) == [301, 400, 300]
    assert weighted_credits(["email", "paid_search", "email"], weights, -1001) == [-301, -400, -300]


def test_ties_go_by_the_fixed_channel_order():
    weights = {"email": 0.5, "direct": 0.5}
    assert weighted_credits(["email", "direct"], weights, 1001) == [500, 501]
    assert weighted_credits(["direct", "email"], weights, 1001) == [501, 500]


def test_channels_without_weight_get_nothing_unless_all_lack_it():
    weights = {"email": 0.25, "display": 0.0}
    assert weighted_credits(["display", "email", "podcast"], weights, 999) == [0, 999, 0]
    assert weighted_credits(["display", "podcast", "display"], weights, 1000) == [334, 333, 333]
    assert weighted_credits(["display"], {}, -7) == [-7]


def test_float_weights_are_made_exact_deterministically():
    assert exact_weight(0.1) == Fraction(1, 10)
    assert exact_weight(2 / 3) == Fraction(2, 3)
    assert exact_weight(1e-13) == 0
    assert exact_weight(Fraction(1, 7)) == Fraction(1, 7)
    assert weighted_credits(["email", "direct"], {"email": 2 / 3, "direct": 1 / 3}, 300) == [
        200,
        100,
    ]


def test_invalid_input_is_rejected():
    with pytest.raises(ValueError):
        weighted_credits([], {"email": 1.0}, 100)
    with pytest.raises(ValueError):
        weighted_credits(["email"], {"email": -0.5}, 100)
    with pytest.raises(ValueError):
        weighted_credits(["email"], {"email": math.nan}, 100)
    with pytest.raises(ValueError):
        weighted_credits(["email"], {"email": math.inf}, 100)
    with pytest.raises(TypeError):
        weighted_credits(["email"], {"email": 1.0}, 100.0)
    with pytest.raises(TypeError):
        weighted_credits(["email"], {"email": True}, 100)
    with pytest.raises(TypeError):
        weighted_credits("email", {"email": 1.0}, 100)


@given(paths, weight_maps, revenues)
def test_credits_sum_exactly_and_refunds_mirror(path, weights, revenue):
    credits = weighted_credits(path, weights, revenue)
    assert len(credits) == len(path)
    assert sum(credits) == revenue
    assert weighted_credits(path, weights, -revenue) == [-minor for minor in credits]
    assert weighted_credits(path, weights, revenue) == credits


@given(paths, weight_maps, revenues)
def test_each_channel_gets_its_share_within_one_minor_unit(path, weights, revenue):
    exact = {channel: exact_weight(weights.get(channel, 0.0)) for channel in set(path)}
    assume(any(exact.values()))
    total_weight = sum(exact.values())
    credits = weighted_credits(path, weights, revenue)
    for channel, minor in by_channel(path, credits).items():
        assert abs(minor - revenue * exact[channel] / total_weight) < 1
        touches = [credit for name, credit in zip(path, credits) if name == channel]
        assert max(touches) - min(touches) <= 1


@given(paths, revenues)
def test_all_zero_weights_fall_back_to_linear(path, revenue):
    zero = dict.fromkeys(path, 0.0)
    assert weighted_credits(path, zero, revenue) == largest_remainder(revenue, [1] * len(path))


def test_learned_weights_split_each_order_exactly():
    journeys = [
        (["paid_search", "email", "direct"], True),
        (["paid_search"], False),
        (["email", "email"], True),
        (["podcast", "direct"], False),
    ]
    for weights in (markov_weights(journeys), shapley_weights(journeys)):
        for channels, _ in journeys:
            for revenue in (0, 1, 999, -1001, 123_456_789):
                assert sum(weighted_credits(channels, weights, revenue)) == revenue
