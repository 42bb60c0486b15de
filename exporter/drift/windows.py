"""Time-based sliding windows of counts: a ring of slices, memory fixed by shape × slices."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np


class WindowClock:
    """The windows' time axis: monotonic, anchored to the wall clock once, at start.

    now() = wall at start + (monotonic now − monotonic at start): it never steps when the wall
    clock does (NTP, a VM resumed, an operator), yet reads like wall time, so window slices
    stay comparable with a snapshot written before a restart. `place` puts an exchange on this
    axis by its age — how long ago, by the wall clock, its request arrived — so a backlog lands
    in the slices its requests arrived in, not the one it is processed in.
    """

    def __init__(self, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self.anchor = wall() - monotonic()

    def now(self) -> float:
        return self.anchor + self.monotonic()

    def place(self, arrivals: list[float]) -> tuple[float, list[float]]:
        """(now, the window time of each wall-clock arrival time): now − age, the age never below 0.

        An age can only be measured by the wall clock the proxy stamped; a step back makes it
        negative (placed now), a step forward makes rows look late (counted as such, never mixed
        into a window they do not belong to).
        """
        now, wall = self.now(), self.wall()
        return now, [now - max(wall - t, 0.0) for t in arrivals]


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

    def add_past(self, when: float, now: float, counts: np.ndarray) -> bool:
        """Add counts that happened at `when` (≤ now) into their own slice; False if the window has left it behind.

        A slice counts as left behind once it has expired (or would expire at `now`): adding to it
        would put old rows into the window ending now.
        """
        self._advance(now)  # the window ends now
        head = self.head
        assert head is not None
        k = math.floor(when / self.slice_width)
        if k > head:
            k = head  # from a little ahead of now (rounding): the newest slice
        if head - k >= self.slices:
            return False
        self.ring[k % self.slices] += counts
        self.total += counts
        return True

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
