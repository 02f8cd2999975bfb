"""Per-order credits packed for storage, and what a batch changes in the daily channel report.

An order's row holds its path's channels (in the fixed channel order) and, for each channel,
net then gross (sales only) credits for each model, as big-endian int64s: the layout SQL's
`credit_minor(credits, (channel * 2 + kind) * models + model)` reads. Pure NumPy: the recompute
packs a whole batch in a few array passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_BIG_ENDIAN = np.dtype(">i8")


@dataclass(frozen=True)
class PackedOrders:
    """One batch's rows: order i's channels are pair_channel[first[i]:first[i + 1]]."""

    first: np.ndarray  # int64[N + 1]
    pair_channel: np.ndarray  # int64[P], vocabulary indexes
    # int64[P, 2, M]: per (order, channel) pair, net and gross credit per model.
    values: np.ndarray

    def credits(self, order: int) -> bytes:
        return self.values[self.first[order] : self.first[order + 1]].astype(_BIG_ENDIAN).tobytes()

    def channels(self, order: int) -> np.ndarray:
        return self.pair_channel[self.first[order] : self.first[order + 1]]

    def encoded(self) -> list[bytes]:
        """Every order's packed credits, converted to big-endian once for the whole batch."""
        raw = self.values.astype(_BIG_ENDIAN).tobytes()
        width = self.values.shape[1] * self.values.shape[2] * 8 if self.values.ndim == 3 else 0
        view = memoryview(raw)
        bounds = (self.first * width).tolist()
        return [bytes(view[start:end]) for start, end in zip(bounds, bounds[1:])]


def pack(
    orders: int,
    tp_order: np.ndarray,
    channel: np.ndarray,
    net: Sequence[np.ndarray],
    gross: Sequence[np.ndarray],
) -> PackedOrders:
    """Sum each model's per-touchpoint credits per (order, channel)."""
    vocabulary = int(channel.max()) + 1 if len(channel) else 1
    keys, pair = np.unique(tp_order * vocabulary + channel, return_inverse=True)
    pair_order, pair_channel = np.divmod(keys, vocabulary)
    values = np.zeros((len(keys), 2, len(net)), dtype=np.int64)
    sums = GroupSums(pair)
    for model, (model_net, model_gross) in enumerate(zip(net, gross, strict=True)):
        values[:, 0, model] = sums(model_net)
        values[:, 1, model] = sums(model_gross)
    first = np.zeros(orders + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_order, minlength=orders), out=first[1:])
    return PackedOrders(first, pair_channel, values)


class GroupSums:
    """Exact int64 sums per group (float sums, as np.bincount's, lose cents beyond 2^53)."""

    def __init__(self, group: np.ndarray, minlength: int = 0) -> None:
        self._order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=minlength)
        self._starts = (np.cumsum(counts) - counts)[counts > 0]
        self._present = np.flatnonzero(counts > 0)
        self._groups = len(counts)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        sums = np.zeros(self._groups, dtype=np.int64)
        if len(self._starts):
            ordered = np.asarray(values, dtype=np.int64)[self._order]
            sums[self._present] = np.add.reduceat(ordered, self._starts)
        return sums


def unpack(credits: bytes, models: int, channels: int) -> np.ndarray:
    """int64[channels, 2, models] from a stored row's packed credits."""
    return np.frombuffer(credits, dtype=_BIG_ENDIAN).reshape(channels, 2, models).astype(np.int64)


@dataclass
class ChannelDayChanges:
    """Additions to the daily channel report, keyed by (day, currency, model, channel)."""

    totals: dict[tuple, list[int]]  # key -> [revenue, refunds, net, orders]

    @classmethod
    def empty(cls) -> ChannelDayChanges:
        return cls({})

    def add(
        self,
        groups: Sequence[tuple],
        pair_group: np.ndarray,
        pair_channel: np.ndarray,
        channel_names: Sequence[str],
        models: Sequence[str],
        values: np.ndarray,
        sign: int,
    ) -> None:
        """Add (sign 1) or take back (sign -1) credits of (order, channel) pairs: `pair_group`
        indexes `groups`, the (day, currency) of each pair's order; `pair_channel` indexes
        `channel_names`; `values` is int64[P, 2, M] (net, gross per model)."""
        if not len(pair_group):
            return
        unique, inverse = np.unique(pair_group * len(channel_names) + pair_channel, return_inverse=True)
        keys = [
            (*groups[combined // len(channel_names)], channel_names[combined % len(channel_names)])
            for combined in unique.tolist()
        ]
        group_sums = GroupSums(inverse)
        for model_index, model in enumerate(models):
            net = values[:, 0, model_index]
            gross = values[:, 1, model_index]
            sums = np.stack(
                [
                    group_sums(gross),
                    group_sums(gross - net),
                    group_sums(net),
                    group_sums((gross != 0).astype(np.int64)),
                ],
                axis=1,
            )
            for (day, currency, channel), row in zip(keys, (sign * sums).tolist(), strict=True):
                entry = self.totals.setdefault((day, currency, model, channel), [0, 0, 0, 0])
                for field in range(4):
                    entry[field] += row[field]

    def rows(self) -> list[tuple]:
        """(day, currency, model, channel, revenue, refunds, net, orders), zero changes left out."""
        return [(*key, *totals) for key, totals in self.totals.items() if any(totals)]
