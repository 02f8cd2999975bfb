"""Shapley-value attribution: channels as players of a coalition game learned from journeys.

The worth of a coalition S of channels is what converting journeys whose channel set lies
within S brought in: v(S) = sum over T subset of S of r(T), where r(T) counts the conversions
(or sums the revenue) of converting journeys whose set of channels is exactly T. This is the
data-driven game of Zhao, Mahboobi and Bagheri, "Shapley Value Methods for Attribution
Modeling in Online Advertising" (arXiv:1804.05327, 2018), and of Dalessandro et al. (ADKDD
2012). Journey order and repeats do not matter; non-converting journeys add no worth.

Players are the channels seen on converting journeys; any other channel gets zero (it is a
null player, and leaving it out changes nobody else's value). Up to `exact_limit` players,
the values come from every coalition: the worth of all 2^n coalitions by a subset-sum pass
over bitmasks, then each player's weighted marginal contributions. Beyond that, from
`samples` random orders of the players drawn from a seeded generator (Castro, Gomez and
Tejada, Computers & Operations Research 36(5), 2009): in one order a channel's marginal
contribution is the worth of every journey set it completes, that is, whose members it is
the last of to arrive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from math import factorial
from typing import Literal

import numpy as np

from skeldir.domains.attribution.channels import channel_sort_key
from skeldir.domains.attribution.weighted import normalise

Journey = tuple[Sequence[str], bool] | tuple[Sequence[str], bool, int]
Worth = Literal["conversions", "revenue"]

DEFAULT_EXACT_LIMIT = 12
DEFAULT_SAMPLES = 2_000
# 2^24 coalitions of float64 already take 128 MiB.
MAX_EXACT_LIMIT = 24
_SAMPLE_BATCH_CELLS = 1 << 22


def shapley_values(
    paths: Iterable[Journey],
    *,
    worth: Worth = "conversions",
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Each channel's Shapley value, channels in the fixed channel order.

    The values sum to the grand coalition's worth: all conversions, or all revenue of
    converting journeys (each journey's third item, in minor units, for worth="revenue").
    Sampled values are the same for the same journeys and seed, whatever their order.
    """
    if worth not in ("conversions", "revenue"):
        raise ValueError(f"worth must be 'conversions' or 'revenue', got {worth!r}")
    if not 0 <= exact_limit <= MAX_EXACT_LIMIT:
        raise ValueError(f"exact_limit must be within 0..{MAX_EXACT_LIMIT}, got {exact_limit}")
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")
    dividends, channels = _dividends(paths, worth)
    players = sorted(
        {channel for members in dividends for channel in members}, key=channel_sort_key
    )
    values = dict.fromkeys(sorted(channels, key=channel_sort_key), 0.0)
    if not players:
        return values
    index = {channel: position for position, channel in enumerate(players)}
    sets = sorted(
        (sorted(index[channel] for channel in members), value)
        for members, value in dividends.items()
    )
    if len(players) <= exact_limit:
        shares = _exact(sets, len(players))
    else:
        shares = _sampled(sets, len(players), samples, seed)
    values.update(zip(players, shares.tolist()))
    return values


def shapley_weights(
    paths: Iterable[Journey],
    *,
    worth: Worth = "conversions",
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Shapley values normalised to sum to 1 (all zero when nothing converted)."""
    return normalise(
        shapley_values(paths, worth=worth, exact_limit=exact_limit, samples=samples, seed=seed)
    )


def _dividends(paths: Iterable[Journey], worth: Worth) -> tuple[Counter[frozenset[str]], set[str]]:
    """r(T) per channel set T with non-zero worth, and every channel seen on any journey."""
    dividends: Counter[frozenset[str]] = Counter()
    channels: set[str] = set()
    for path in paths:
        touches, converted = path[0], path[1]
        if isinstance(touches, str):
            raise TypeError("a journey's channels must be a sequence of names, not one string")
        members = frozenset(touches)
        channels |= members
        if not converted or not members:
            continue
        if worth == "conversions":
            dividends[members] += 1
            continue
        revenue = path[2] if len(path) > 2 else None
        if isinstance(revenue, bool) or not isinstance(revenue, int):
            raise TypeError("worth='revenue' needs each converting journey's revenue as an int")
        if revenue < 0:
            raise ValueError(f"a converting journey's revenue must not be negative: {revenue}")
        dividends[members] += revenue
    return +dividends, channels


def _exact(sets: list[tuple[list[int], int]], size: int) -> np.ndarray:
    coalitions = 1 << size
    worth = np.zeros(coalitions)
    for members, value in sets:
        worth[sum(1 << member for member in members)] += value
    members_in = np.zeros(coalitions, dtype=np.intp)
    for player in range(size):
        # Axis 1 of this view splits coalitions by whether they hold `player`.
        worth.reshape(-1, 2, 1 << player)[:, 1, :] += worth.reshape(-1, 2, 1 << player)[:, 0, :]
        members_in.reshape(-1, 2, 1 << player)[:, 1, :] += 1
    share = np.array(
        [factorial(k) * factorial(size - k - 1) / factorial(size) for k in range(size)] + [0.0]
    )[members_in]
    values = np.empty(size)
    for player in range(size):
        split = worth.reshape(-1, 2, 1 << player)
        gain = split[:, 1, :] - split[:, 0, :]
        values[player] = float((gain * share.reshape(-1, 2, 1 << player)[:, 0, :]).sum())
    return values


def _sampled(sets: list[tuple[list[int], int]], size: int, samples: int, seed: int) -> np.ndarray:
    members = np.fromiter((m for ms, _ in sets for m in ms), dtype=np.intp)
    offsets = np.cumsum([0] + [len(ms) for ms, _ in sets[:-1]])
    worth = np.array([value for _, value in sets], dtype=np.float64)
    generator = np.random.default_rng(seed)
    totals = np.zeros(size)
    batch = max(1, _SAMPLE_BATCH_CELLS // max(members.size, size))
    for first in range(0, samples, batch):
        orders = generator.permuted(
            np.tile(np.arange(size), (min(batch, samples - first), 1)), axis=1
        )
        arrival = np.argsort(orders, axis=1)
        last_arrival = np.maximum.reduceat(arrival[:, members], offsets, axis=1)
        completer = np.take_along_axis(orders, last_arrival, axis=1)
        totals += np.bincount(
            completer.ravel(), weights=np.tile(worth, completer.shape[0]), minlength=size
        )
    return totals / samples
