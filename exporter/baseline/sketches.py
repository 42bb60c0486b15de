"""Bounded-memory summaries for the first pass over training data: moments, a sample, top counts."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


class Moments:
    """Count, min, max, mean and sum of squared deviations, merged chunk by chunk (Chan et al. 1979)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, x: np.ndarray) -> None:
        m = len(x)
        if m == 0:
            return
        mean = float(x.mean())
        m2 = float(np.square(x - mean).sum())
        n = self.n + m
        delta = mean - self.mean
        self.mean += delta * m / n
        self.m2 += m2 + delta * delta * self.n * m / n
        self.n = n
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0)."""
        return math.sqrt(self.m2 / self.n) if self.n else 0.0


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mix (Steele, Lea & Flood 2014): a pseudo-random priority per index."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    out: np.ndarray = z ^ (z >> np.uint64(31))
    return out


class PrioritySample:
    """A uniform sample of `size` values without replacement (bottom-k by a hash of the position).

    Each value's priority depends only on its position in the stream and the seed, so the sample
    (hence the quantile edges) is the same whatever the chunk sizes. Memory: O(size).
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.key = np.uint64((seed * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF)
        self.values = np.empty(0)
        self.priorities = np.empty(0, dtype=np.uint64)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending_n = 0
        self.limit: np.uint64 | None = None  # once full, only priorities below this can enter
        self.seen = 0

    def add(self, x: np.ndarray) -> None:
        if self.size <= 0 or len(x) == 0:
            self.seen += len(x)
            return
        positions = np.arange(self.seen, self.seen + len(x), dtype=np.uint64)
        self.seen += len(x)
        prio = _splitmix64(positions ^ self.key)
        if self.limit is not None:
            keep = prio < self.limit
            x, prio = x[keep], prio[keep]
        if len(x):
            self.pending.append((x, prio))
            self.pending_n += len(x)
            if self.pending_n >= self.size:
                self._compact()

    def _compact(self) -> None:
        values = np.concatenate([self.values, *(v for v, _ in self.pending)])
        prio = np.concatenate([self.priorities, *(p for _, p in self.pending)])
        self.pending, self.pending_n = [], 0
        if len(values) > self.size:
            keep = np.argpartition(prio, self.size - 1)[: self.size]
            values, prio = values[keep], prio[keep]
        if len(values) >= self.size:
            self.limit = prio.max()
        self.values, self.priorities = values, prio

    def result(self) -> np.ndarray:
        """The sampled values, sorted."""
        self._compact()
        return np.sort(self.values)


class TopCounts:
    """Counts per key, exact while at most `capacity` distinct keys were seen, Misra–Gries beyond.

    When the table outgrows 2·capacity, every count drops by the capacity-th largest and keys at
    zero go: a key more frequent than total/capacity always survives. The build counts the chosen
    top-K exactly in its second pass, so this only has to find candidates.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.exact = True

    def update(self, counts: Mapping[str, int]) -> None:
        """Add counts per key (one chunk's)."""
        table = self.counts
        for key, n in counts.items():
            table[key] = table.get(key, 0) + n
        if len(table) > 2 * self.capacity:
            self._prune()

    def _prune(self) -> None:
        floor = sorted(self.counts.values(), reverse=True)[self.capacity]
        self.counts = {k: c - floor for k, c in self.counts.items() if c > floor}
        self.exact = False

    def top(self, k: int) -> list[str]:
        """The k most frequent keys, most frequent first, ties by key."""
        return [key for key, _ in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
