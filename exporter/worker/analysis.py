"""Everything the worker does with a batch of events, and the metrics it answers scrapes with."""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import Metric

from exporter.analyzers.columns import ColumnMonitor
from exporter.analyzers.content import ContentStats
from exporter.analyzers.llm import LLMStats
from exporter.analyzers.performance import Performance, Prediction
from exporter.config import Config
from exporter.drift.thresholds import CriticalValues
from exporter.drift.windows import WindowClock
from exporter.events import Event, Extraction, Feedback
from exporter.labels import default_labels
from exporter.metrics.definitions import LABEL_DELAY_BUCKETS, family, histogram_family
from exporter.metrics.families import families
from exporter.metrics.render import render, render_samples
from exporter.worker import state
from exporter.worker.checks import load_checked_baseline
from exporter.worker.extract import Extractor
from exporter.worker.labels_join import JoinCache
from exporter.worker.store import PredictionStore, StoreCounters

log = logging.getLogger(__name__)


class Analysis:
    """Extraction plus the analyzers; state carries over a reload where the config allows.

    Labels: every series of an exchange carries the (model, version) the proxy decided for it.
    The baseline describes one model, so drift and quality are labelled with one pair: the
    configured name and version when both are set, else the pair of the first exchange with rows
    (until then the configured values or "unknown"). Exchanges of any other pair are left out of
    drift and quality and counted in model_baseline_skipped_rows_total under their own labels.
    """

    def __init__(self, config: Config, previous: Analysis | None = None, restore: bool = True) -> None:
        self.config = config
        self.default = default_labels(config.model)
        self.extractor = Extractor(config)
        # counters never go backwards across a reload
        self.content: ContentStats = previous.content if previous is not None else ContentStats()
        self.skipped: dict[tuple[str, str], int] = previous.skipped if previous is not None else {}
        self.llm: LLMStats = previous.llm if previous is not None else LLMStats(config.llm)
        self.llm.configure(config.llm)
        # the pair drift and quality are labelled with: fixed when configured; else the first seen,
        # kept over a reload that leaves model.name and model.version as they were
        self.bound: tuple[str, str] | None = None
        if config.model.name is not None and config.model.version is not None:
            self.bound = self.default
        elif previous is not None and (previous.config.model.name, previous.config.model.version) == (
            config.model.name,
            config.model.version,
        ):
            self.bound = previous.bound
        self.columns: ColumnMonitor | None = None
        # the windows' monotonic axis; rows are placed on it by when their request arrived
        self.clock: WindowClock = previous.clock if previous is not None else WindowClock()
        baseline = load_checked_baseline(config)  # ConfigError: the worker answers the reload with it
        # labels joined to predictions (POST /feedback): the cache and the counters survive a reload
        self.performance: Performance = Performance(
            config, baseline, previous.performance if previous is not None else None
        )
        self.joins: JoinCache[Prediction] = (
            previous.joins if previous is not None else JoinCache(config.labels.cache_size, config.labels.ttl)
        )
        self.joins.resize(config.labels.cache_size, config.labels.ttl)
        self.delays: list[float] = previous.delays if previous is not None else [0.0] * (len(LABEL_DELAY_BUCKETS) + 2)
        if baseline is not None:
            old = previous.columns if previous is not None else None
            self.columns = ColumnMonitor(
                baseline,
                config,
                old,
                # simulated in a background thread (kept over a reload), never on the scrape path
                critical=old.critical if old is not None else CriticalValues(background=True),
            )
            if self.bound is not None:
                self.columns.model = list(self.bound)
        # snapshots (worker/state.py): restored once, when the worker starts
        self.restored: bool = previous.restored if previous is not None else False
        self.snapshot_time: float | None = previous.snapshot_time if previous is not None else None
        self.snapshot_failures: int = previous.snapshot_failures if previous is not None else 0
        if previous is None and config.state_dir is not None and restore and not self._restore(config.state_dir):
            # a snapshot that broke half way through: what it put in goes with it, from a fresh start
            Analysis.__init__(self, config, None, restore=False)
            return
        # the prediction store: kept over a reload that leaves prediction_log and the id header as they were
        self.store_counters: StoreCounters = previous.store_counters if previous is not None else StoreCounters()
        self.store: PredictionStore | None = None
        old_store = previous.store if previous is not None else None
        same = previous is not None and (previous.config.prediction_log, previous.config.capture.id_header) == (
            config.prediction_log,
            config.capture.id_header,
        )
        if old_store is not None and same:
            self.store = old_store
        else:
            if old_store is not None:
                old_store.close()
            if config.prediction_log.path is not None:
                self.store = PredictionStore(config.prediction_log, config.capture.id_header, self.store_counters)

    def _restore(self, directory: str) -> bool:
        """Restore the snapshot in `directory`, if any and if it fits; False if it broke half way through."""
        doc = state.load(directory)
        if doc is None:
            return True
        try:
            why_not = state.restore(self, doc)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            # written by hand, or by a release that shaped a field otherwise: never a worker that cannot start
            log.warning(
                "state snapshot in %s not restored, starting empty: malformed (%s: %s)",
                directory,
                type(exc).__name__,
                exc,
            )
            return False
        if why_not is None:
            self.restored = True
            log.info(
                "restored the analysis state snapshot from %s (%s)",
                directory,
                "windows and counters" if doc.get("clean") else "windows; counters start at 0 after a crash",
            )
        else:
            log.warning("state snapshot in %s not restored: %s", directory, why_not)
        return True

    def save_state(self, clean: bool) -> None:
        """Write a snapshot to state_dir; a failure is logged and counted, never raised."""
        directory = self.config.state_dir
        if directory is None:
            return
        try:
            state.save(directory, state.snapshot(self, clean))
        except OSError as exc:
            self.snapshot_failures += 1
            log.warning("cannot write the state snapshot to %s: %s", directory, exc)
        else:
            self.snapshot_time = time.time()

    def process(self, events: list[Event]) -> None:
        if self.store is not None:
            self.store.offer(events)
        extract = self.extractor.extract
        content = self.content
        extractions = [extract(event) for event in events]
        llm = self.llm.update
        for event, ex in zip(events, extractions):
            content.update(ex)
            llm(event, ex)
        self._remember(events, extractions)
        if self.columns is not None:
            now, when = self.clock.place([event.time - event.duration for event in events])
            kept = self._bound(extractions)
            if len(kept) != len(extractions):
                ids = {id(ex) for ex in kept}
                when = [at for ex, at in zip(extractions, when) if id(ex) in ids]
            self.columns.update(kept, now, when)

    def _remember(self, events: list[Event], extractions: list[Extraction]) -> None:
        """Cache each prediction row that has an id, for the labels to come; estimate performance from the scores."""
        add = self.joins.add
        scored: list[Prediction] = []
        for event, ex in zip(events, extractions):
            rows = ex.predictions
            if rows is None or rows.n == 0:
                continue
            predictions = self.performance.read(rows, ex.features)
            scored.extend(predictions)
            ids = rows.ids or (ex.features.ids if ex.features is not None and ex.features.n == rows.n else None)
            if ids is None:
                continue
            for rid, prediction in zip(ids, predictions):
                add(rid, event.time, prediction)
        if scored:
            self.performance.observe(scored, self.clock.now())

    def labels(self, feedback: Feedback) -> None:
        """Join a POST's labels to cached predictions and score the matches."""
        joins = self.joins
        joins.outcomes["invalid"] += feedback.invalid
        pairs = []
        values = []
        delays = self.delays
        for label in feedback.labels:
            at = label.time if label.time is not None else feedback.received
            outcome, entry = joins.join(label.id, at)
            if entry is None:
                continue
            pairs.append((entry.prediction, label.label))
            values.append(label.value)
            delay = max(at - entry.time, 0.0)
            delays[bisect_left(LABEL_DELAY_BUCKETS, delay)] += 1
            delays[-1] += delay
        if pairs:
            self.performance.add(pairs, self.clock.now(), values)
        joins.expire(feedback.received)

    def _label_metrics(self, now: float) -> Iterator[Metric]:
        mv = list(self.bound or self.default)
        joins = self.joins
        yield from families(
            [
                *(("model_labels_total", [outcome, *mv], float(n)) for outcome, n in joins.outcomes.items()),
                ("model_labels_cache_entries", mv, float(len(joins.entries))),
                *(
                    ("model_labels_cache_evictions_total", [reason, *mv], float(n))
                    for reason, n in joins.evictions.items()
                ),
                *self.performance.samples(now, mv, self.columns.critical if self.columns is not None else None),
            ]
        )
        delay = histogram_family("model_label_delay_seconds")
        cumulative, buckets = 0.0, []
        for bound, n in zip([*LABEL_DELAY_BUCKETS, math.inf], self.delays):
            cumulative += n
            buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
        delay.add_metric(mv, buckets, self.delays[-1])
        yield delay

    def _bound(self, extractions: list[Extraction]) -> list[Extraction]:
        """The extractions of the monitor's (model, version); the others are counted as skipped."""
        bound = self.bound
        if bound is None:
            first = next((ex for ex in extractions if ex.features is not None or ex.predictions is not None), None)
            if first is None:
                return extractions  # nothing to bin (payload errors at most): stay unbound
            bound = self.bound = (first.model, first.version)
            assert self.columns is not None  # only called with a baseline
            self.columns.model = list(bound)
        model, version = bound
        if all(ex.model == model and ex.version == version for ex in extractions):
            return extractions  # the usual case: one model behind the sidecar
        kept = []
        for ex in extractions:
            if ex.model == model and ex.version == version:
                kept.append(ex)
            elif ex.features is not None or ex.predictions is not None:
                mv = (ex.model, ex.version)
                self.skipped[mv] = self.skipped.get(mv, 0) + (ex.features.n if ex.features is not None else 0)
        return kept

    def close(self) -> None:
        """A clean stop: what the prediction store has queued is written."""
        if self.store is not None:
            self.store.close()

    def collect(self) -> Iterator[Metric]:
        yield from self._head()
        if self.columns is not None:
            yield from self.columns.collect(self.clock.now())
            yield from self._tail()

    def exposition(self, openmetrics: bool) -> bytes:
        """What `collect()` renders to, byte for byte (tests/metrics), the drift monitor's tens of
        thousands of series rendered straight from its samples (metrics/render.py)."""
        if self.columns is None:
            return render(self.collect(), openmetrics)
        return b"".join(
            (
                render(self._head(), openmetrics, eof=False),
                render_samples(self.columns.samples(self.clock.now()), openmetrics, eof=False),
                render(self._tail(), openmetrics),
            )
        )

    def _head(self) -> Iterator[Metric]:
        yield from self.content.collect(*self.default)
        if self.store is not None:
            yield from self.store.collect()
        yield from self.llm.collect()
        yield from self._label_metrics(self.clock.now())
        if self.config.state_dir is not None:
            restored = family("model_exporter_state_restored")
            restored.add_metric([], 1 if self.restored else 0)
            yield restored
            failures = family("model_exporter_state_snapshot_failures_total")
            failures.add_metric([], self.snapshot_failures)
            yield failures
            if self.snapshot_time is not None:
                written = family("model_exporter_state_snapshot_timestamp_seconds")
                written.add_metric([], self.snapshot_time)
                yield written

    def _tail(self) -> Iterator[Metric]:
        if self.skipped:
            skipped = family("model_baseline_skipped_rows_total")
            for mv, n in sorted(self.skipped.items()):
                skipped.add_metric(list(mv), n)
            yield skipped
