"""Time-based sliding windows of counts: a ring of slices, memory fixed by shape × slices."""

from __future__ import annotations

import math

import numpy as np


class SlidingCounts:
    """Counts over the last `width` seconds, kept as `slices` sub-intervals.

    Adding is O(size of the added array); reading the window total is O(shape), because a
    running total is kept and an expiring slice is subtracted from it. The window covers
    between width − width/slices and width seconds of history, as slices expire whole.
    """

    def __init__(self, width: float, slices: int, size: int) -> None:
        if width <= 0 or slices <= 0:
            raise ValueError("window width and slice count must be positive")
        self.width = width
        self.slices = slices
        self.slice_width = width / slices
        self.ring = np.zeros((slices, size), dtype=np.int64)
        self.total = np.zeros(size, dtype=np.int64)
        self.head: int | None = None  # absolute number of the newest slice

    def _advance(self, now: float) -> int:
        current = math.floor(now / self.slice_width)
        head = self.head
        if head is None:
            self.head = current
            return current % self.slices
        if current > head:
            if current - head >= self.slices:
                self.ring[:] = 0
                self.total[:] = 0
            else:
                for k in range(head + 1, current + 1):
                    row = self.ring[k % self.slices]
                    self.total -= row
                    row[:] = 0
            self.head = head = current
        # a clock that steps back lands in the newest slice rather than rewriting history
        return head % self.slices

    def add(self, now: float, counts: np.ndarray) -> None:
        row = self._advance(now)
        self.ring[row] += counts
        self.total += counts

    def add_at(self, now: float, index: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add one count (or `weights`) at each position in `index` (vectorised)."""
        counts = np.bincount(index, weights=weights, minlength=self.total.shape[0])
        if counts.dtype != np.int64:
            counts = counts.astype(np.int64)
        self.add(now, counts)

    def read(self, now: float) -> np.ndarray:
        """Counts in the window ending now (a view: copy before keeping it)."""
        self._advance(now)
        return self.total


def parse_windows(spec: dict[str, float]) -> dict[str, tuple[float, int]]:
    """Window name → (width seconds, slices): 10 slices for short windows, 12 for an hour and up."""
    return {name: (width, 12 if width >= 3600 else 10) for name, width in spec.items()}
