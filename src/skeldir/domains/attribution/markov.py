"""Markov-chain attribution: each channel's removal effect, solved exactly from journeys.

A first-order chain over channels with a start state and two absorbing states, conversion
and null (Anderl, Becker, von Wangenheim and Schumann, "Mapping the customer journey",
IJRM 33(3), 2016; the ChannelAttribution R package). Transition probabilities are the
observed transition counts over all journeys: start -> first channel, each channel -> the
next, last channel -> conversion or null. The probability of conversion from start is the
absorption probability of the chain, solved from (I - Q) x = r. Removing a channel sends
every transition into it to null; its removal effect is 1 - P(conversion without it) /
P(conversion).

A run of touches of one channel counts as one touch (A, A, B is A, B). A self-loop only
changes how long the chain stays in a state, not where it is absorbed, so removal effects
are the same either way; dropping it merges more journeys into identical ones. Journeys
without any touchpoint carry no channel information and are ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from skeldir.domains.attribution.channels import channel_sort_key
from skeldir.domains.attribution.weighted import normalise

Journey = tuple[Sequence[str], bool]


def removal_effects(paths: Iterable[Journey]) -> dict[str, float]:
    """Each channel's removal effect in [0, 1], channels in the fixed channel order.

    A channel from which the chain cannot reach conversion gets exactly zero; every channel
    gets zero when nothing converted.
    """
    return _solve(paths).effects


def markov_weights(paths: Iterable[Journey]) -> dict[str, float]:
    """Removal effects normalised to sum to 1 (all zero when nothing converted)."""
    return normalise(_solve(paths).effects)


def conversion_probability(paths: Iterable[Journey]) -> float:
    """The chain's probability of reaching conversion from start (0.0 with no journeys)."""
    return _solve(paths).conversion_probability


@dataclass(frozen=True, slots=True)
class _Solution:
    conversion_probability: float
    effects: dict[str, float]


def _solve(paths: Iterable[Journey]) -> _Solution:
    journeys = _count_journeys(paths)
    channels = sorted(
        set(chain.from_iterable(touches for touches, _ in journeys)), key=channel_sort_key
    )
    if not channels:
        return _Solution(0.0, {})
    size = len(channels)
    start, between, converting, lost = _transition_counts(journeys, channels)

    leaving = between.sum(axis=1) + converting + lost
    to_channel = between / leaving[:, None]
    to_conversion = converting / leaving
    entry = start / start.sum()
    system = np.eye(size) - to_channel
    probability = float(entry @ np.linalg.solve(system, to_conversion))
    if probability <= 0.0:
        return _Solution(0.0, dict.fromkeys(channels, 0.0))

    # One system per removed channel, solved as a batch: the removed channel's row says x_c = 0.
    removed = np.arange(size)
    systems = np.broadcast_to(system, (size, size, size)).copy()
    systems[removed, removed, :] = 0.0
    systems[removed, removed, removed] = 1.0
    targets = np.broadcast_to(to_conversion, (size, size)).copy()
    targets[removed, removed] = 0.0
    without = np.linalg.solve(systems, targets[..., None])[..., 0] @ entry
    effects = np.clip(1.0 - without / probability, 0.0, 1.0)
    effects[~_reaches_conversion(between > 0, converting > 0)] = 0.0
    return _Solution(probability, dict(zip(channels, effects.tolist())))


def _count_journeys(paths: Iterable[Journey]) -> Counter[tuple[tuple[str, ...], bool]]:
    journeys: Counter[tuple[tuple[str, ...], bool]] = Counter()
    for path in paths:
        touches, converted = path[0], path[1]
        if isinstance(touches, str):
            raise TypeError("a journey's channels must be a sequence of names, not one string")
        if touches:
            journeys[(tuple(touches), bool(converted))] += 1
    return journeys


def _transition_counts(
    journeys: Counter[tuple[tuple[str, ...], bool]], channels: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Start, channel-to-channel, to-conversion and to-null counts, weighted by multiplicity."""
    size = len(channels)
    index = {channel: position for position, channel in enumerate(channels)}
    keys = list(journeys)
    counts = np.fromiter(journeys.values(), dtype=np.float64, count=len(keys))
    lengths = np.fromiter(map(len, (touches for touches, _ in keys)), np.intp, len(keys))
    converted = np.fromiter((flag for _, flag in keys), dtype=bool, count=len(keys))
    touches = np.fromiter(
        map(index.__getitem__, chain.from_iterable(touches for touches, _ in keys)),
        dtype=np.intp,
        count=int(lengths.sum()),
    )
    ends = np.cumsum(lengths)
    last = touches[ends - 1]

    start = np.bincount(touches[ends - lengths], weights=counts, minlength=size)
    converting = np.bincount(last[converted], weights=counts[converted], minlength=size)
    lost = np.bincount(last[~converted], weights=counts[~converted], minlength=size)

    source, target = touches[:-1], touches[1:]
    within = np.ones(source.size, dtype=bool)
    within[ends[:-1] - 1] = False
    within &= source != target
    between = np.bincount(
        source[within] * size + target[within],
        weights=np.repeat(counts, lengths)[:-1][within],
        minlength=size * size,
    ).reshape(size, size)
    return start, between, converting, lost


def _reaches_conversion(edges: np.ndarray, converts: np.ndarray) -> np.ndarray:
    """Channels with a path of observed transitions to conversion."""
    reached = converts.copy()
    while True:
        grown = reached | edges[:, reached].any(axis=1)
        if (grown == reached).all():
            return reached
        reached = grown
