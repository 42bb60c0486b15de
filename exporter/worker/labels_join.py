"""The join of ground-truth labels to recent predictions by id: a bounded, time-limited cache.

Memory is fixed by `labels.cache_size`: the cache holds at most that many predictions, the
oldest pushed out first (counted). A label more than `labels.ttl` after its prediction is
"expired" and not scored; predictions older than twice the ttl are forgotten (counted).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

OUTCOMES = ("matched", "unknown_id", "expired", "duplicate", "invalid")
EVICTION_REASONS = ("full", "expired")

P = TypeVar("P")  # what is remembered of a prediction


@dataclass(slots=True)
class Entry(Generic[P]):
    time: float
    prediction: P
    joined: bool = False


class JoinCache(Generic[P]):
    """Predictions by id, in arrival order; `join` finds one for a label at most once."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self.entries: OrderedDict[str, Entry[P]] = OrderedDict()
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.evictions: dict[str, int] = dict.fromkeys(EVICTION_REASONS, 0)

    def resize(self, size: int, ttl: float) -> None:
        self.size, self.ttl = size, ttl
        self._trim()

    def add(self, rid: str, time: float, prediction: P) -> None:
        """Remember a prediction; an id seen again is replaced (a retried request)."""
        self.expire(time)  # first, so that only a cache full of live predictions counts as full
        entries = self.entries
        if rid in entries:
            del entries[rid]
        entries[rid] = Entry(time, prediction)
        self._trim()

    def _trim(self) -> None:
        entries = self.entries
        while len(entries) > self.size:
            entries.popitem(last=False)
            self.evictions["full"] += 1

    def expire(self, now: float) -> None:
        """Forget predictions older than twice the ttl (until then a late label counts as expired)."""
        entries = self.entries
        horizon = now - 2 * self.ttl
        while entries:
            first = next(iter(entries.values()))
            if first.time >= horizon:
                break
            entries.popitem(last=False)
            self.evictions["expired"] += 1

    def join(self, rid: str, label_time: float) -> tuple[str, Entry[P] | None]:
        """The outcome for a label of `rid` at `label_time`, and the prediction when matched."""
        entry = self.entries.get(rid)
        if entry is None:
            outcome = "unknown_id"
        elif entry.joined:
            outcome = "duplicate"
        elif label_time - entry.time > self.ttl:
            outcome = "expired"
        else:
            entry.joined = True
            outcome = "matched"
        self.outcomes[outcome] += 1
        return outcome, entry if outcome == "matched" else None
