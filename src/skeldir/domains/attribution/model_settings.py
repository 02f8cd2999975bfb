"""What the models credit a path with: the channel vocabulary, the time-decay half-life, the
models to run and the data-driven models' learned weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

import numpy as np

from skeldir.domains.attribution.weighted import exact_weight


@dataclass(frozen=True)
class LearnedWeights:
    """A data-driven model's channel weights over a vocabulary: exact, as floats, and ranked."""

    exact: tuple[Fraction, ...]
    approx: np.ndarray  # float64, the nearest float of each exact weight
    rank: np.ndarray  # int64, equal exact weights share a rank

    @classmethod
    def over(cls, channels: Sequence[str], weights: Mapping[str, float]) -> LearnedWeights:
        exact = tuple(exact_weight(weights.get(channel, 0)) for channel in channels)
        ranks = {value: index for index, value in enumerate(sorted(set(exact)))}
        return cls(
            exact,
            np.array([float(value) for value in exact], dtype=np.float64),
            np.array([ranks[value] for value in exact], dtype=np.int64),
        )


@dataclass(frozen=True)
class ModelSettings:
    channels: tuple[str, ...]  # the vocabulary, in the fixed channel order
    half_life: timedelta
    models: tuple[str, ...]
    learned: Mapping[str, Mapping[str, float]]  # data-driven model -> channel -> weight

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "_learned_weights",
            {model: LearnedWeights.over(self.channels, w) for model, w in self.learned.items()},
        )

    def learned_weights(self, model: str) -> LearnedWeights:
        return self._learned_weights[model]  # type: ignore[attr-defined]
