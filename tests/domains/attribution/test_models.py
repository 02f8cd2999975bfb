from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from skeldir.domains.attribution.apportion import largest_remainder
from skeldir.domains.attribution.channels import CHANNELS
from skeldir.domains.attribution.models import (
    DECAY_BITS,
    MODEL_VERSION,
    RULE_BASED_MODELS,
    Credit,
    Touchpoint,
    _decay_weights,
    allocate,
    allocate_all,
    by_channel,
    canonical_path,
    model_weights,
)

CONVERTED_AT = datetime(2024, 3, 31, 12, 0, tzinfo=timezone.utc)
LOOKBACK = timedelta(days=30)


def days_before(days: float) -> datetime:
    return CONVERTED_AT - timedelta(days=days)


def touch(channel: str, days: float, touchpoint_id: str | None = None) -> Touchpoint:
    return Touchpoint(channel, days_before(days), touchpoint_id)


def minors(credits: list[Credit]) -> list[int]:
    return [credit.minor for credit in credits]


touchpoints = st.builds(
    Touchpoint,
    channel=st.sampled_from(CHANNELS + ("podcast",)),
    # Some touches fall after the conversion or before the lookback window on purpose.
    occurred_at=st.integers(min_value=-3 * 86_400, max_value=35 * 86_400).map(
        lambda seconds: CONVERTED_AT - timedelta(seconds=seconds)
    ),
    touchpoint_id=st.none() | st.sampled_from(["a", "b", "c"]),
)
paths = st.lists(touchpoints, max_size=8)
revenues = st.integers(min_value=-10**9, max_value=10**9)
models = st.sampled_from(RULE_BASED_MODELS)


def test_model_registry():
    assert RULE_BASED_MODELS == (
        "first_touch", "last_touch", "last_non_direct", "linear", "time_decay", "position_based",
    )
    assert set(MODEL_VERSION) == set(RULE_BASED_MODELS)
    assert all(isinstance(version, int) and version >= 1 for version in MODEL_VERSION.values())


def test_first_and_last_touch():
    path = [touch("email", 1), touch("paid_search", 10), touch("direct", 3)]
    assert allocate("first_touch", path, 999, CONVERTED_AT) == [Credit("paid_search", 999, 0)]
    assert allocate("last_touch", path, 999, CONVERTED_AT) == [Credit("email", 999, 2)]


def test_last_non_direct_skips_trailing_direct_touches():
    path = [touch("paid_social", 5), touch("email", 4), touch("direct", 2), touch("direct", 1)]
    assert allocate("last_non_direct", path, 500, CONVERTED_AT) == [Credit("email", 500, 1)]


def test_last_non_direct_with_only_direct_touches_credits_the_last():
    path = [touch("direct", 5), touch("direct", 1)]
    assert allocate("last_non_direct", path, 500, CONVERTED_AT) == [Credit("direct", 500, 1)]


def test_linear_even_split():
    path = [touch("email", 3), touch("referral", 2), touch("display", 1)]
    assert minors(allocate("linear", path, 1050, CONVERTED_AT)) == [350, 350, 350]


def test_linear_leftover_cent_goes_to_the_first_in_canonical_order():
    path = [touch("display", 1), touch("email", 3), touch("referral", 2)]
    credits = allocate("linear", path, 1000, CONVERTED_AT)
    assert credits == [
        Credit("email", 334, 0), Credit("referral", 333, 1), Credit("display", 333, 2),
    ]


def test_simultaneous_touches_tie_break_by_channel_order_then_id():
    at_once = [touch("email", 1, "z"), touch("direct", 1), touch("email", 1, "a")]
    assert canonical_path(at_once, CONVERTED_AT) == (
        touch("direct", 1), touch("email", 1, "a"), touch("email", 1, "z"),
    )
    assert minors(allocate("linear", at_once, 2, CONVERTED_AT)) == [1, 1, 0]


def test_position_based_splits():
    four = [touch("paid_search", 4), touch("email", 3), touch("referral", 2), touch("direct", 1)]
    assert minors(allocate("position_based", four, 1000, CONVERTED_AT)) == [400, 100, 100, 400]
    three = four[1:]
    assert minors(allocate("position_based", three, 1000, CONVERTED_AT)) == [400, 200, 400]
    two = four[2:]
    assert minors(allocate("position_based", two, 1000, CONVERTED_AT)) == [500, 500]
    assert minors(allocate("position_based", four[:1], 1000, CONVERTED_AT)) == [1000]


def test_time_decay_halves_the_weight_every_half_life():
    path = [touch("email", 7), touch("direct", 0)]
    assert model_weights("time_decay", canonical_path(path, CONVERTED_AT), CONVERTED_AT) == [
        Fraction(1, 2), Fraction(1),
    ]
    assert allocate("time_decay", path, 1000, CONVERTED_AT) == [
        Credit("email", 333, 0), Credit("direct", 667, 1),
    ]


def test_time_decay_uses_the_given_half_life():
    path = [touch("email", 2), touch("direct", 0)]
    credits = allocate("time_decay", path, 500, CONVERTED_AT, half_life=timedelta(days=1))
    assert minors(credits) == [100, 400]


# The documented bound on a time-decay weight's relative error (see models.DECAY_BITS).
DECAY_RELATIVE_ERROR = Fraction(1, 2**61)
_REFERENCE = Context(prec=50)


def exact_decay(age: timedelta, half_life: timedelta) -> Fraction:
    """2 ** -(age / half_life) to 50 significant digits, far finer than the bound."""
    microsecond = timedelta(microseconds=1)
    exponent = _REFERENCE.divide(Decimal(-(age // microsecond)), Decimal(half_life // microsecond))
    return Fraction(_REFERENCE.power(Decimal(2), exponent))


def decay_weight(age: timedelta, half_life: timedelta = timedelta(days=7)) -> Fraction:
    path = [Touchpoint("email", CONVERTED_AT - age)]
    return model_weights("time_decay", path, CONVERTED_AT, half_life=half_life)[0]


def test_time_decay_fractional_half_lives_are_close_to_exact():
    weight = model_weights("time_decay", [touch("email", 3.5)], CONVERTED_AT)[0]
    exact = exact_decay(timedelta(days=3.5), timedelta(days=7))
    assert abs(weight / exact - 1) < DECAY_RELATIVE_ERROR
    assert 1e-19 < DECAY_RELATIVE_ERROR < 1e-15


# Bits that every platform must reproduce: pure integer arithmetic, no libm.
DECAY_GOLDEN = [
    (timedelta(days=3.5), 0, 3260954456333195553),
    (timedelta(days=1), 0, 4176913159044679998),
    (timedelta(days=10), 1, 3426469543337905161),
    (timedelta(microseconds=1), 0, 4611686018422102558),
    (timedelta(days=7, microseconds=-1), 0, 2305843009216336625),
    (timedelta(days=30, seconds=-1), 4, 3783133427480619687),
]


@pytest.mark.parametrize("age, whole, mantissa", DECAY_GOLDEN)
def test_time_decay_weights_are_golden_integers(age, whole, mantissa):
    assert DECAY_BITS == 62
    weight = Fraction(mantissa, 2 ** (DECAY_BITS + whole))
    assert decay_weight(age) == weight
    assert abs(weight / exact_decay(age, timedelta(days=7)) - 1) < DECAY_RELATIVE_ERROR


def test_time_decay_allocates_with_exact_integer_weights():
    path = [Touchpoint("email", CONVERTED_AT - age) for age, _, _ in DECAY_GOLDEN]
    canonical = canonical_path(path, CONVERTED_AT)
    weights = _decay_weights(canonical, CONVERTED_AT, timedelta(days=7))
    assert all(type(weight) is int for weight in weights)
    # Oldest first, each mantissa shifted by the oldest touch's whole half-lives less its own.
    assert weights == sorted(mantissa << (4 - whole) for _, whole, mantissa in DECAY_GOLDEN)
    exact = model_weights("time_decay", canonical, CONVERTED_AT)
    assert [Fraction(weight, weights[0]) for weight in weights] == [w / exact[0] for w in exact]


half_lives = st.integers(min_value=10**6, max_value=1000 * 86_400 * 10**6).map(
    lambda us: timedelta(microseconds=us)
)


def ages_for(half_life: timedelta) -> st.SearchStrategy[timedelta]:
    """Ages up to 60 days and 100 half-lives (older weights are mere powers of two smaller)."""
    most = min(60 * 86_400 * 10**6, 100 * (half_life // timedelta(microseconds=1)))
    return st.integers(min_value=0, max_value=most).map(lambda us: timedelta(microseconds=us))


decay_cases = half_lives.flatmap(lambda hl: st.tuples(ages_for(hl), st.just(hl)))


@given(decay_cases)
def test_time_decay_is_within_the_documented_precision(case):
    age, half_life = case
    weight = decay_weight(age, half_life)
    assert abs(weight / exact_decay(age, half_life) - 1) < DECAY_RELATIVE_ERROR


@given(half_lives.flatmap(lambda hl: st.tuples(ages_for(hl), ages_for(hl), st.just(hl))))
def test_time_decay_weight_falls_with_age(case):
    age, other, half_life = case
    assume(age != other)
    younger, older = min(age, other), max(age, other)
    assert decay_weight(timedelta(0), half_life) == 1
    assert decay_weight(younger, half_life) > decay_weight(older, half_life)


@given(decay_cases, st.integers(min_value=1, max_value=40))
def test_time_decay_halves_exactly_per_half_life(case, periods):
    age, half_life = case
    assert decay_weight(age + periods * half_life, half_life) * 2**periods == decay_weight(
        age, half_life
    )


def test_empty_path_falls_back_to_direct_or_the_given_channel():
    assert allocate("linear", [], 1234, CONVERTED_AT) == [Credit("direct", 1234, None)]
    credits = allocate("time_decay", [], -50, CONVERTED_AT, fallback_channel="unknown")
    assert credits == [Credit("unknown", -50, None)]


def test_touches_outside_the_window_fall_back():
    path = [touch("email", -1), touch("referral", 31)]
    assert allocate("first_touch", path, 10, CONVERTED_AT) == [Credit("direct", 10, None)]


def test_window_bounds_are_inclusive():
    path = [touch("email", 30), touch("referral", 0)]
    assert canonical_path(path, CONVERTED_AT, LOOKBACK) == tuple(path)
    assert canonical_path(path, CONVERTED_AT, timedelta(days=7)) == (path[1],)


def test_refund_mirrors_the_sale():
    path = [touch("paid_search", 9), touch("email", 2), touch("direct", 1)]
    for model in RULE_BASED_MODELS:
        sale = allocate(model, path, 1001, CONVERTED_AT)
        refund = allocate(model, path, -1001, CONVERTED_AT)
        assert [(c.channel, -c.minor, c.touchpoint_index) for c in refund] == [
            (c.channel, c.minor, c.touchpoint_index) for c in sale
        ]


def test_invalid_input_is_rejected():
    path = [touch("email", 1)]
    with pytest.raises(ValueError):
        allocate("markov", path, 100, CONVERTED_AT)
    with pytest.raises(ValueError):
        allocate("linear", path, 100, CONVERTED_AT.replace(tzinfo=None))
    with pytest.raises(ValueError):
        allocate("linear", [Touchpoint("email", datetime(2024, 3, 30))], 100, CONVERTED_AT)
    with pytest.raises(ValueError):
        allocate("time_decay", path, 100, CONVERTED_AT, half_life=timedelta(0))
    with pytest.raises(TypeError):
        allocate("linear", [], 10.5, CONVERTED_AT)


def test_allocate_all_matches_allocate_per_model():
    path = [touch("paid_search", 9), touch("email", 2), touch("direct", 1), touch("display", 40)]
    everything = allocate_all(path, 777, CONVERTED_AT, half_life=timedelta(days=3))
    assert tuple(everything) == RULE_BASED_MODELS
    for model, credits in everything.items():
        assert credits == allocate(model, path, 777, CONVERTED_AT, half_life=timedelta(days=3))


def test_by_channel_sums_in_fixed_channel_order():
    credits = [
        Credit("podcast", 5, 0),
        Credit("email", 10, 1),
        Credit("affiliate_network", 1, 2),
        Credit("direct", 3, 3),
        Credit("email", -10, 4),
        Credit("direct", 4, 5),
    ]
    assert by_channel(credits) == [("direct", 7), ("affiliate_network", 1), ("podcast", 5)]


@given(models, paths, revenues)
def test_credits_sum_exactly_to_revenue(model, path, revenue):
    assert sum(minors(allocate(model, path, revenue, CONVERTED_AT))) == revenue


@given(models, paths, revenues)
def test_by_channel_keeps_every_minor_unit(model, path, revenue):
    totals = by_channel(allocate(model, path, revenue, CONVERTED_AT))
    assert sum(minor for _, minor in totals) == revenue


@given(models, paths, revenues, st.data())
def test_input_order_does_not_matter(model, path, revenue, data):
    shuffled = data.draw(st.permutations(path))
    assert allocate(model, shuffled, revenue, CONVERTED_AT) == allocate(
        model, path, revenue, CONVERTED_AT
    )


@given(models, paths, revenues)
def test_allocation_is_deterministic(model, path, revenue):
    first = allocate(model, list(path), revenue, CONVERTED_AT)
    assert allocate(model, list(path), revenue, CONVERTED_AT) == first


@given(models, paths, revenues)
def test_sales_never_credit_negative_and_refunds_never_positive(model, path, revenue):
    for credit in allocate(model, path, revenue, CONVERTED_AT):
        assert credit.minor * revenue >= 0


@given(models, paths, revenues)
def test_refund_is_the_mirror_of_its_sale(model, path, revenue):
    sale = allocate(model, path, revenue, CONVERTED_AT)
    refund = allocate(model, path, -revenue, CONVERTED_AT)
    assert refund == [Credit(c.channel, -c.minor, c.touchpoint_index) for c in sale]


@given(models, paths, revenues)
def test_touches_outside_the_window_never_get_credit(model, path, revenue):
    in_window = [tp for tp in path if CONVERTED_AT - LOOKBACK <= tp.occurred_at <= CONVERTED_AT]
    credits = allocate(model, path, revenue, CONVERTED_AT, lookback=LOOKBACK)
    assert credits == allocate(model, in_window, revenue, CONVERTED_AT, lookback=LOOKBACK)
    canonical = canonical_path(path, CONVERTED_AT, LOOKBACK)
    for credit in credits:
        if credit.touchpoint_index is None:
            assert not in_window
        else:
            touchpoint = canonical[credit.touchpoint_index]
            assert touchpoint.channel == credit.channel
            assert CONVERTED_AT - LOOKBACK <= touchpoint.occurred_at <= CONVERTED_AT


@given(models, paths, revenues)
def test_credits_are_within_one_unit_of_the_exact_share(model, path, revenue):
    canonical = canonical_path(path, CONVERTED_AT)
    assume(canonical)
    weights = model_weights(model, canonical, CONVERTED_AT)
    credited = {c.touchpoint_index: c.minor for c in allocate(model, path, revenue, CONVERTED_AT)}
    for index, weight in enumerate(weights):
        assert abs(credited.get(index, 0) - revenue * weight / sum(weights)) < 1


# From an hour up: far shorter half-lives make 35-day-old weights huge powers of two, too slow
# for the Fraction route below (the integer route copes).
@given(
    models,
    paths,
    revenues,
    st.integers(min_value=3600, max_value=1000 * 86_400).map(lambda s: timedelta(seconds=s)),
)
def test_allocation_is_largest_remainder_of_the_model_weights(model, path, revenue, half_life):
    canonical = canonical_path(path, CONVERTED_AT)
    assume(canonical)
    weights = model_weights(model, canonical, CONVERTED_AT, half_life=half_life)
    expected = [
        Credit(tp.channel, part, index)
        for index, (tp, weight, part) in enumerate(
            zip(canonical, weights, largest_remainder(revenue, weights))
        )
        if weight
    ]
    assert allocate(model, path, revenue, CONVERTED_AT, half_life=half_life) == expected
