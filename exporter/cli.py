"""Command line: run, check-config, baseline, batch, demo."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence

import exporter
from exporter.baseline.cli import add_baseline_parser, run_baseline
from exporter.batch.cli import add_batch_parser
from exporter.config import Config, ConfigError, apply_flags, load_file, validate_complete
from exporter.events import Extraction


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that override the config file; `run` and `check-config` take the same ones."""
    parser.add_argument("--upstream", metavar="URL", help="model server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--listen", metavar="HOST:PORT", help="proxy port for client traffic (default 0.0.0.0:8000)")
    parser.add_argument("--metrics-listen", metavar="HOST:PORT", help="metrics/admin port (default 0.0.0.0:9110)")
    parser.add_argument("--baseline", metavar="FILE", help="baseline file built by `model-exporter baseline build`")
    parser.add_argument("--model", metavar="NAME", help="model label value")
    parser.add_argument("--model-version", metavar="V", help="version label value")
    parser.add_argument(
        "--web-config",
        metavar="FILE",
        help="TLS and basic auth of the metrics port (exporter-toolkit web config format)",
    )
    parser.add_argument(
        "--state-dir", metavar="DIR", help="snapshots of the analysis windows and counters, restored at start"
    )
    parser.add_argument(
        "--tail",
        action="append",
        default=[],
        metavar="PATH",
        help="follow a prediction log (a file or a glob; repeat for several); other shapes: tail.sources in the config",
    )
    parser.add_argument(
        "--from-start", action="store_true", help="tail: read what the files hold already (default: start at their end)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-exporter", description=exporter.__doc__)
    parser.add_argument("--version", action="version", version=f"model-exporter {exporter.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the sidecar (proxy + metrics port)")
    run.add_argument("--config", metavar="FILE", help="YAML config file; flags override it")
    _add_config_flags(run)
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    add_baseline_parser(sub)
    add_batch_parser(sub)

    check = sub.add_parser(
        "check-config", help="validate a config file (and the flags `run` would get) as `run` does, and exit"
    )
    check.add_argument("config", metavar="FILE")
    _add_config_flags(check)

    demo = sub.add_parser("demo", help="demo model server + sidecar + traffic, in one command")
    demo.add_argument("--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
    demo.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    demo.add_argument("--drift-after", type=float, default=120.0, help="seconds before drift is injected")
    demo.add_argument("--proxy-port", type=int, default=8000)
    demo.add_argument("--metrics-port", type=int, default=9110)
    demo.add_argument("--model-port", type=int, default=8080)
    return parser


def load_config(args: argparse.Namespace) -> Config:
    """File, then flags, then the cross-field checks: what `run` and `check-config` share.

    The checks that need the baseline run where it is loaded (the worker; check-config calls them too).
    """
    config = load_file(args.config) if args.config else Config()
    config = apply_flags(
        config,
        upstream=args.upstream,
        listen=args.listen,
        metrics_listen=args.metrics_listen,
        model=args.model,
        model_version=args.model_version,
        baseline=args.baseline,
        web_config=args.web_config,
        state_dir=args.state_dir,
        tail=args.tail,
        from_start=args.from_start,
    )
    return validate_complete(config)


def _predlog_records(path: str) -> Iterator[tuple[str, Extraction]]:
    """A prediction log's records through the protocol adapters (auto-detected), for `baseline build`."""
    from exporter.worker.replay import file_extractions

    return file_extractions(path, Config())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            config = load_config(args)
            logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            from exporter.sidecar.startup import run

            run(config, (lambda: load_config(args)) if args.config else None)
            return 0
        if args.command == "check-config":
            config = load_config(args)
            from exporter.worker.checks import load_checked_baseline  # what the worker checks at start

            load_checked_baseline(config)
            if config.web_config is not None:
                from exporter.sidecar.web_config import load_web_config

                load_web_config(config.web_config)
            print(
                f"{args.config}: OK (upstream {config.upstream.url or 'none'}, "
                f"proxy {config.listen if config.upstream.url else 'off'}, "
                f"metrics {config.metrics_listen}, baseline {config.baseline or 'none'}"
                + (f", tailing {len(config.tail.sources)} source(s)" if config.tail.sources else "")
                + ")"
            )
            return 0
        if args.command == "baseline":
            return run_baseline(args, predlog=_predlog_records)
        if args.command == "batch":
            from exporter.batch.cli import run_batch

            return run_batch(args)
        if args.command == "demo":
            from exporter.demo.runner import run_demo

            return run_demo(
                duration=args.duration,
                proxy_port=args.proxy_port,
                metrics_port=args.metrics_port,
                model_port=args.model_port,
                rate=args.rate,
                drift_after=args.drift_after,
            )
    except ConfigError as exc:
        print(f"model-exporter: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a port already in use
        print(f"model-exporter: error: {exc}", file=sys.stderr)
        return 1
    return 2
