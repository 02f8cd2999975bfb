import random
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skeldir.domains.attribution.markov import (
    conversion_probability,
    markov_weights,
    removal_effects,
)

CHANNEL_NAMES = ("direct", "paid_search", "email", "referral", "podcast")
journeys = st.lists(
    st.tuples(st.lists(st.sampled_from(CHANNEL_NAMES), max_size=5), st.booleans()), max_size=12
)


def reference_chain(paths, *, keep_self_loops=False):
    """Conversion probability with and without each channel, in exact fractions."""
    counts: dict[tuple[str, str], int] = {}
    for channels, converted in paths:
        if not channels:
            continue
        states = ["start", *channels, "conv" if converted else "null"]
        for source, target in pairwise(states):
            if source != target or keep_self_loops:
                counts[source, target] = counts.get((source, target), 0) + 1
    channels = sorted({source for source, _ in counts} - {"start"})

    def probability(removed=None):
        live = [channel for channel in channels if channel != removed]
        leaving = {s: sum(n for (src, _), n in counts.items() if src == s) for s in live}
        # x_s = P(s -> conv) + sum_t P(s -> t) x_t, solved by Gauss-Jordan elimination.
        rows = []
        for s in live:
            row = [
                Fraction(int(s == t)) - Fraction(counts.get((s, t), 0), leaving[s]) for t in live
            ]
            rows.append(row + [Fraction(counts.get((s, "conv"), 0), leaving[s])])
        for col in range(len(live)):
            pivot = next(r for r in range(col, len(live)) if rows[r][col] != 0)
            rows[col], rows[pivot] = rows[pivot], rows[col]
            rows[col] = [value / rows[col][col] for value in rows[col]]
            for r in range(len(live)):
                if r != col and rows[r][col] != 0:
                    factor = rows[r][col]
                    rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col])]
        solution = {s: rows[i][-1] for i, s in enumerate(live)}
        starts = sum(n for (src, _), n in counts.items() if src == "start")
        return sum(
            (Fraction(counts.get(("start", s), 0), starts) * solution[s] for s in live),
            Fraction(0),
        )

    return probability(), {channel: probability(channel) for channel in channels}


def reference_effects(paths, **options):
    probability, without = reference_chain(paths, **options)
    if probability == 0:
        return {channel: Fraction(0) for channel in without}
    return {channel: 1 - rest / probability for channel, rest in without.items()}


def test_hand_computed_three_journeys():
    """Journeys: A > B converts, A converts, B does not.

    Counts: start->A 2, start->B 1; A->B 1, A->conv 1; B->conv 1, B->null 1.
    From B conversion is 1/2; from A it is 1/2 + 1/2 * 1/2 = 3/4.
    From start: 2/3 * 3/4 + 1/3 * 1/2 = 2/3.
    Without A (start->A goes to null): 1/3 * 1/2 = 1/6, effect 1 - (1/6) / (2/3) = 3/4.
    Without B (A->B goes to null): from A 1/2, so 2/3 * 1/2 = 1/3, effect 1 - (1/3) / (2/3) = 1/2.
    Weights: (3/4) / (5/4) = 3/5 and (1/2) / (5/4) = 2/5.
    """
    paths = [(["A", "B"], True), (["A"], True), (["B"], False)]
    assert conversion_probability(paths) == pytest.approx(2 / 3, abs=1e-12)
    assert removal_effects(paths) == pytest.approx({"A": 0.75, "B": 0.5}, abs=1e-12)
    assert markov_weights(paths) == pytest.approx({"A": 0.6, "B": 0.4}, abs=1e-12)


def test_published_example_analyzecore():
    """Sergey Bryl, "Marketing Multi-Channel Attribution model with R (part 1: Markov chain
    concept)", analyzecore.com, 2016-08-03: journeys C1 > C2 > C3 converts, C1 does not,
    C2 > C3 does not. Published there: P(conversion) = 1/3, and 1/6 without C1 (removal
    effect 0.5). Every converting journey needs C2 and C3, so removing either leaves 0
    (effect 1); C1 gets 0.5 / 2.5 = 0.2 of the credit, C2 and C3 0.4 each.
    """
    paths = [(["C1", "C2", "C3"], True), (["C1"], False), (["C2", "C3"], False)]
    assert conversion_probability(paths) == pytest.approx(1 / 3, abs=1e-12)
    assert removal_effects(paths) == pytest.approx({"C1": 0.5, "C2": 1.0, "C3": 1.0}, abs=1e-12)
    assert markov_weights(paths) == pytest.approx({"C1": 0.2, "C2": 0.4, "C3": 0.4}, abs=1e-12)


def test_published_example_puzyrov():
    """Serhii Puzyrov, "Markov Chain Attribution - Simple Explanation Of Removal Effect",
    serhiipuzyrov.com, 2019-07: Google Ads alone converts twice and once not, mailing alone
    converts once, Google Ads > mailing converts once. Published transition probabilities:
    start > google ads 0.8, start > mailing 0.2, google ads > conv 0.5, > mailing 0.25,
    > null 0.25, mailing > conv 1. So P = 0.8 * (0.5 + 0.25) + 0.2 = 0.8; without Google
    Ads 0.2 (effect 0.75), without mailing 0.8 * 0.5 = 0.4 (effect 0.5): weights 0.6, 0.4.
    """
    paths = [
        (["google_ads"], True),
        (["google_ads"], True),
        (["mailing"], True),
        (["google_ads", "mailing"], True),
        (["google_ads"], False),
    ]
    assert conversion_probability(paths) == pytest.approx(0.8, abs=1e-12)
    assert removal_effects(paths) == pytest.approx({"google_ads": 0.75, "mailing": 0.5}, abs=1e-12)
    assert markov_weights(paths) == pytest.approx({"google_ads": 0.6, "mailing": 0.4}, abs=1e-12)


def test_a_channel_never_on_a_converting_journey_can_still_earn_credit():
    """B converts, C > B does not. The chain forgets that C's journey failed: from C it goes
    to B, which converts half the time, so P = 1/2 * 1/2 + 1/2 * 1/2 = 1/2 and without C only
    1/4. C's removal effect is 1/2 although C was never on a converting journey.
    """
    paths = [(["organic_search"], True), (["display", "organic_search"], False)]
    assert removal_effects(paths) == pytest.approx(
        {"organic_search": 1.0, "display": 0.5}, abs=1e-12
    )
    assert markov_weights(paths) == pytest.approx(
        {"organic_search": 2 / 3, "display": 1 / 3}, abs=1e-12
    )


def test_a_channel_that_only_ends_failed_journeys_gets_zero():
    paths = [(["email"], True), (["email", "display"], False), (["display"], False)]
    assert removal_effects(paths)["display"] == 0.0
    assert markov_weights(paths) == {"email": 1.0, "display": 0.0}


def test_single_touch_journeys_weigh_each_channel_by_its_conversions():
    # With one touch per journey the chain is start -> channel -> end, so each removal
    # effect is that channel's share of all conversions; 30 channels, beyond the defaults.
    generator = random.Random(7)
    paths, conversions = [], {}
    for number in range(30):
        channel = f"channel_{number:02d}"
        conversions[channel] = generator.randint(1, 50)
        paths += [([channel], True)] * conversions[channel]
        paths += [([channel], False)] * generator.randint(0, 50)
    total = sum(conversions.values())
    weights = markov_weights(paths)
    assert list(weights) == sorted(conversions)
    assert weights == pytest.approx({c: n / total for c, n in conversions.items()}, abs=1e-12)


def test_edge_cases():
    assert removal_effects([]) == {}
    assert markov_weights([([], True), ((), False)]) == {}
    assert conversion_probability([]) == 0.0
    no_sale = [(["email", "direct"], False), (["direct"], False)]
    assert removal_effects(no_sale) == {"direct": 0.0, "email": 0.0}
    assert markov_weights(no_sale) == {"direct": 0.0, "email": 0.0}
    with pytest.raises(TypeError):
        removal_effects([("email", True)])


def test_results_list_channels_in_the_fixed_order():
    paths = [(["podcast", "email", "direct", "paid_search"], True)]
    assert list(removal_effects(paths)) == ["direct", "paid_search", "email", "podcast"]


@given(journeys)
def test_matches_the_exact_reference_solution(paths):
    expected = reference_effects(paths)
    assert removal_effects(paths) == pytest.approx(
        {channel: float(value) for channel, value in expected.items()}, abs=1e-9
    )
    assert conversion_probability(paths) == pytest.approx(
        float(reference_chain(paths)[0]), abs=1e-12
    )


@given(journeys)
def test_repeated_touches_change_nothing(paths):
    # Kept as self-loops (exact reference) or collapsed (the model): the same effects.
    expected = reference_effects(paths, keep_self_loops=True)
    assert removal_effects(paths) == pytest.approx(
        {channel: float(value) for channel, value in expected.items()}, abs=1e-9
    )
    doubled = [
        ([c for c in channels for _ in range(2)], converted) for channels, converted in paths
    ]
    assert removal_effects(doubled) == removal_effects(paths)


@given(journeys)
def test_weights_are_a_distribution(paths):
    weights = markov_weights(paths)
    assert all(weight >= 0 for weight in weights.values())
    if any(converted and channels for channels, converted in paths):
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)
    else:
        assert set(weights.values()) <= {0.0}
    assert all(0.0 <= effect <= 1.0 for effect in removal_effects(paths).values())


@given(journeys, st.randoms(use_true_random=False))
def test_deterministic_and_independent_of_journey_order(paths, generator):
    shuffled = list(paths)
    generator.shuffle(shuffled)
    assert removal_effects(shuffled) == removal_effects(paths) == removal_effects(paths)
    assert markov_weights(iter(shuffled)) == markov_weights(paths)


@given(journeys)
def test_zero_effect_exactly_when_conversion_is_unreachable(paths):
    edges: dict[str, set[str]] = {}
    for channels, converted in paths:
        if not channels:
            continue
        states = [*channels, "conv" if converted else "null"]
        for source, target in pairwise(states):
            edges.setdefault(source, set()).add(target)
    reaches = {"conv"}
    while True:
        grown = reaches | {s for s, targets in edges.items() if targets & reaches}
        if grown == reaches:
            break
        reaches = grown
    for channel, effect in removal_effects(paths).items():
        assert (effect > 0) == (channel in reaches)
