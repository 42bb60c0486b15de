"""`model-exporter batch`: read, analyse, judge, write the results, summarise; returns the exit status."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from exporter.baseline.format import BaselineError
from exporter.baseline.readers import data_format
from exporter.batch import output
from exporter.batch.job import BatchJob, JobError, Progress, batch_config, is_predlog, run_job
from exporter.config import Config, ConfigError, apply_flags, load_file
from exporter.events import Extraction


class ProgressBar:
    """One line on a terminal's stderr, redrawn at most every 0.2 s; nothing when stderr is not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.on = stream.isatty()
        self.last = 0.0

    def __call__(self, state: Progress) -> None:
        now = time.monotonic()
        if not self.on or now - self.last < 0.2:
            return
        self.last = now
        elapsed = max(now - state.started, 1e-9)
        self.stream.write(
            f"\r[{state.file_index}/{state.files}] {state.path[-40:]}: {state.rows:,} records, "
            f"{state.rows / elapsed:,.0f}/s\x1b[K"
        )
        self.stream.flush()

    def done(self) -> None:
        if self.on and self.last:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _config(args: argparse.Namespace) -> Config:
    config = load_file(args.config) if args.config else Config()
    config = apply_flags(config, model=args.model, model_version=args.model_version, baseline=args.baseline)
    return batch_config(config, config.baseline or args.baseline)


def _check_inputs(paths: list[str]) -> None:
    for path in paths:
        if not is_predlog(path):
            try:
                data_format(path)
            except BaselineError as exc:
                raise JobError(f"{exc}, or a prediction log (.predlog, .predlog.gz)") from None
        if not os.path.isfile(path):
            raise JobError(f"{path}: cannot read ({'no such file' if not os.path.exists(path) else 'not a file'})")


def run(args: argparse.Namespace, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    started = time.monotonic()
    model = [args.model or "unknown", args.model_version or "unknown"]
    try:
        config = _config(args)
        model = [config.model.name or "unknown", config.model.version or "unknown"]
        _check_inputs(args.data)
        job = BatchJob(config, label=args.label, exclude=args.exclude)
        bar = ProgressBar(stderr)
        try:
            result = run_job(job, args.data, args.chunk_rows, bar, read_predlog=_predlog_reader(config))
        finally:
            bar.done()
    except (ConfigError, BaselineError, JobError) as exc:
        print(f"model-exporter batch: error: {exc}", file=stderr)
        _report_failure(args, model, time.monotonic() - started, stderr)
        return 2
    missing = _missing_columns(job)
    verdict = output.judge(result.samples, args.max_missing, args.max_out_of_range, missing)
    status = 0 if verdict.clean else 1
    series = output.JobSeries(job.model, result.records, result.duration, time.time(), True, verdict)
    samples = [*result.samples, *series.samples()]
    outputs: list[str] = []
    try:
        if args.push:
            grouping = _grouping(args, job.model)
            output.push(args.push, args.job, grouping, samples, replace=True)
            outputs.append(f"{args.push} (job {args.job!r}, instance {grouping['instance']!r})")
        elif args.textfile:
            outputs.append(output.write_textfile(args.textfile, args.job, samples, replace=True))
    except OSError as exc:  # the analysis is done: its summary still goes out, then the error
        print(f"model-exporter batch: error: {exc}", file=stderr)
        status = 2
    doc = output.report(
        result.records,
        result.duration,
        list(args.data),
        verdict,
        result.unexpected,
        result.labels,
        status,
        outputs,
        result.payload_errors,
    )
    stdout.write(output.dumps(doc) if args.json else output.summary(doc, config.drift.min_rows))
    return status


def _missing_columns(job: BatchJob) -> list[str]:
    return [f"{role} {name}" for role, name in job.missing_columns()]


def _grouping(args: argparse.Namespace, model: list[str]) -> dict[str, str]:
    """The push's grouping key besides the job: --instance, else the model label value (stable across runs)."""
    return {"instance": args.instance or model[0]}


def _report_failure(args: argparse.Namespace, model: list[str], duration: float, stderr: TextIO) -> None:
    """A failed run still says so where the results go: the job's outcome series only."""
    samples = list(output.JobSeries(model, 0, duration, time.time(), False).samples())
    try:
        if args.push:
            output.push(args.push, args.job, _grouping(args, model), samples, replace=False)
        elif args.textfile:
            output.write_textfile(args.textfile, args.job, samples, replace=False)
    except OSError as exc:
        print(f"model-exporter batch: error: {exc}", file=stderr)


def _predlog_reader(config: Config) -> Callable[[str], Iterator[Extraction]]:
    """A prediction log's records as the worker extracts them (worker/replay.py); errors name the file and line."""
    from exporter.predlog import PredictionLogError
    from exporter.worker.replay import file_extractions

    def read(path: str) -> Iterator[Extraction]:
        try:
            for _, extraction in file_extractions(path, config):
                yield extraction
        except PredictionLogError as exc:
            raise BaselineError(str(exc)) from None
        except OSError as exc:
            raise BaselineError(f"{path}: cannot read ({exc.strerror or exc})") from None

    return read
