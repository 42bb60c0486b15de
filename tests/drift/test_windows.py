"""Sliding windows expire whole slices and keep a running total equal to the ring's sum."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from exporter.drift.windows import SlidingCounts


def test_counts_expire_after_the_window() -> None:
    w = SlidingCounts(width=60.0, slices=6, size=3)  # 10 s slices
    w.add(0.0, np.array([1, 0, 0]))
    w.add(15.0, np.array([0, 2, 0]))
    assert w.read(15.0).tolist() == [1, 2, 0]
    assert w.read(59.9).tolist() == [1, 2, 0]
    assert w.read(60.0).tolist() == [0, 2, 0]  # slice [0, 10) expired
    assert w.read(70.0).tolist() == [0, 0, 0]
    w.add(1000.0, np.array([0, 0, 5]))  # a long gap clears everything at once
    assert w.read(1000.0).tolist() == [0, 0, 5]


def test_add_at_is_a_vectorised_bincount() -> None:
    w = SlidingCounts(300.0, 10, 4)
    w.add_at(1.0, np.array([0, 3, 3, 1]))
    assert w.read(1.0).tolist() == [1, 1, 0, 2]


def test_clock_stepping_back_does_not_corrupt() -> None:
    w = SlidingCounts(60.0, 6, 1)
    w.add(100.0, np.array([1]))
    w.add(50.0, np.array([1]))
    assert w.read(100.0).tolist() == [2]


@given(st.lists(st.tuples(st.floats(0, 500), st.integers(0, 2), st.integers(1, 5)), max_size=50))
def test_total_equals_ring_sum_and_only_recent_counts(events: list[tuple[float, int, int]]) -> None:
    w = SlidingCounts(60.0, 6, 3)
    kept: list[tuple[float, int, int]] = []
    now = 0.0
    for t, i, n in sorted(events):
        now = t
        counts = np.zeros(3, dtype=np.int64)
        counts[i] = n
        w.add(t, counts)
        kept.append((t, i, n))
    total = w.read(now)
    assert total.tolist() == w.ring.sum(axis=0).tolist()
    # everything newer than one full width is in the window; nothing older than width is
    recent = np.zeros(3, dtype=np.int64)
    for t, i, n in kept:
        if t // 10 > now // 10 - 6:
            recent[i] += n
    assert total.tolist() == recent.tolist()
