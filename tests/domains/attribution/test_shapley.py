import random
from fractions import Fraction
from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skeldir.domains.attribution.shapley import shapley_values, shapley_weights

CHANNEL_NAMES = ("direct", "paid_search", "email", "referral", "podcast")
journeys = st.lists(
    st.tuples(st.lists(st.sampled_from(CHANNEL_NAMES), max_size=5), st.booleans()), max_size=12
)


def dividends(paths):
    """Conversions per exact channel set of converting journeys."""
    counts: dict[frozenset[str], int] = {}
    for channels, converted, *_ in paths:
        if converted and channels:
            counts[frozenset(channels)] = counts.get(frozenset(channels), 0) + 1
    return counts


def brute_force(paths):
    """The definition: marginal contributions to v(S) = sum of r(T), T within S, over all orders."""
    counts = dividends(paths)
    players = sorted({channel for members in counts for channel in members})

    def worth(coalition):
        return sum(value for members, value in counts.items() if members <= coalition)

    totals = {player: Fraction(0) for player in players}
    orders = list(permutations(players))
    for order in orders:
        for position, player in enumerate(order):
            before = frozenset(order[:position])
            totals[player] += worth(before | {player}) - worth(before)
    return {player: total / len(orders) for player, total in totals.items()}


def closed_form(paths):
    """Zhao et al. (arXiv:1804.05327): each set's worth shared equally by its members."""
    values: dict[str, Fraction] = {}
    for members, value in dividends(paths).items():
        for channel in members:
            values[channel] = values.get(channel, Fraction(0)) + Fraction(value, len(members))
    return values


def many_channel_journeys(channels=14, count=400, seed=3):
    generator = random.Random(seed)
    names = [f"channel_{number:02d}" for number in range(channels)]
    return [
        (
            [generator.choice(names) for _ in range(generator.randint(1, 4))],
            generator.random() < 0.4,
        )
        for _ in range(count)
    ]


def test_hand_computed_three_journeys():
    """Journeys: A > B converts, A converts, B does not.

    r({A, B}) = 1, r({A}) = 1, so v({}) = 0, v({A}) = 1, v({B}) = 0, v({A, B}) = 2.
    A: 1/2 * (v({A}) - v({})) + 1/2 * (v({A, B}) - v({B})) = 1/2 + 1 = 3/2.
    B: 1/2 * (v({B}) - v({})) + 1/2 * (v({A, B}) - v({A})) = 0 + 1/2 = 1/2.
    They sum to the 2 conversions; weights 3/4 and 1/4.
    """
    paths = [(["A", "B"], True), (["A"], True), (["B"], False)]
    assert shapley_values(paths) == {"A": 1.5, "B": 0.5}
    assert shapley_weights(paths) == {"A": 0.75, "B": 0.25}


def test_published_example_towards_data_science():
    """ "Data Driven Marketing Attribution", towardsdatascience.com/data-driven-marketing-
    attribution-1a28d2e613a0, reproduced with its outputs in github.com/tomgorb/misc,
    "Data Driven Attribution.ipynb": of 100 conversions, 20 came through Facebook alone,
    10 Organic, 17 LinkedIn, 17 Facebook + Organic, 30 Facebook + LinkedIn and 6 all three.
    Published worth: v(F+O) = 0.47, v(F+L) = 0.67, v(L+O) = 0.27, v(F+L+O) = 1; Shapley
    values F 0.455, O 0.205, L 0.34.
    """
    groups = {
        ("F",): 20,
        ("O",): 10,
        ("L",): 17,
        ("F", "O"): 17,
        ("F", "L"): 30,
        ("F", "L", "O"): 6,
    }
    paths = [(list(members), True) for members, count in groups.items() for _ in range(count)]
    assert shapley_values(paths) == pytest.approx({"F": 45.5, "L": 34.0, "O": 20.5}, abs=1e-9)
    assert shapley_weights(paths) == pytest.approx({"F": 0.455, "L": 0.34, "O": 0.205}, abs=1e-12)


@given(journeys)
def test_exact_values_match_the_definition_and_the_closed_form(paths):
    expected = brute_force(paths)
    assert expected == closed_form(paths)
    values = shapley_values(paths)
    assert {c: v for c, v in values.items() if c in expected} == pytest.approx(
        {channel: float(value) for channel, value in expected.items()}, abs=1e-9
    )


@given(journeys)
def test_values_share_out_every_conversion(paths):
    values = shapley_values(paths)
    assert sum(values.values()) == pytest.approx(sum(dividends(paths).values()), abs=1e-9)
    assert all(value >= 0 for value in values.values())
    weights = shapley_weights(paths)
    if dividends(paths):
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)
    else:
        assert set(weights.values()) <= {0.0}


@given(journeys, st.randoms(use_true_random=False))
def test_deterministic_and_independent_of_journey_order(paths, generator):
    shuffled = list(paths)
    generator.shuffle(shuffled)
    assert shapley_values(shuffled) == shapley_values(paths) == shapley_values(paths)
    reordered = [(list(reversed(channels)) * 2, converted) for channels, converted in paths]
    assert shapley_values(reordered) == shapley_values(paths)


def test_a_channel_never_on_a_converting_journey_gets_zero():
    paths = [(["email"], True), (["display", "email"], False), (["podcast"], False)]
    assert shapley_values(paths) == {"email": 1.0, "display": 0.0, "podcast": 0.0}
    assert shapley_weights([(["email"], False)]) == {"email": 0.0}
    assert shapley_values([]) == {}


def test_revenue_worth():
    paths = [(["email", "direct"], True, 3000), (["email"], True, 1000), (["direct"], False, 0)]
    assert shapley_values(paths, worth="revenue") == {"direct": 1500.0, "email": 2500.0}
    assert shapley_weights(paths, worth="revenue") == {"direct": 0.375, "email": 0.625}
    assert shapley_values(paths) == {"direct": 0.5, "email": 1.5}


def test_beyond_the_exact_limit_values_are_sampled_deterministically():
    paths = many_channel_journeys()
    expected = {channel: float(value) for channel, value in closed_form(paths).items()}
    sampled = shapley_values(paths, samples=4000, seed=11)
    assert shapley_values(list(reversed(paths)), samples=4000, seed=11) == sampled
    assert shapley_values(paths, samples=4000, seed=12) != sampled
    # Every order hands each journey set's worth to exactly one member.
    assert sum(sampled.values()) == pytest.approx(sum(expected.values()), abs=1e-9)
    assert sampled == pytest.approx(expected, rel=0.1)
    exact = shapley_values(paths, exact_limit=14)
    assert exact == pytest.approx(expected, abs=1e-9)


def test_the_exact_limit_counts_only_channels_on_converting_journeys():
    paths = many_channel_journeys()
    paths = [(channels, False) for channels, _ in paths] + [(["email", "direct"], True)]
    assert shapley_values(paths, samples=1)["email"] == 0.5


def test_sampling_can_be_forced_on_few_channels():
    paths = [(["A", "B"], True), (["A"], True), (["B"], False)]
    sampled = shapley_values(paths, exact_limit=0, samples=2000)
    assert sampled == pytest.approx({"A": 1.5, "B": 0.5}, abs=0.05)


def test_invalid_arguments_are_rejected():
    paths = [(["email"], True, 100)]
    with pytest.raises(ValueError):
        shapley_values(paths, worth="orders")
    with pytest.raises(ValueError):
        shapley_values(paths, exact_limit=25)
    with pytest.raises(ValueError):
        shapley_values(paths, samples=0)
    with pytest.raises(TypeError):
        shapley_values([(["email"], True)], worth="revenue")
    with pytest.raises(TypeError):
        shapley_values([(["email"], True, 1.5)], worth="revenue")
    with pytest.raises(ValueError):
        shapley_values([(["email"], True, -100)], worth="revenue")
    with pytest.raises(TypeError):
        shapley_values([("email", True)])
