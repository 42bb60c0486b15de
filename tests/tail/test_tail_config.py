"""The tail and prediction_log config sections and the --tail / --from-start flags: every error names its path."""

from __future__ import annotations

import pytest

from exporter.config import (
    Config,
    ConfigError,
    PredictionLogConfig,
    TailSource,
    apply_flags,
    from_dict,
    validate_complete,
)


def test_sources_as_paths_or_mappings() -> None:
    config = from_dict(
        {
            "tail": {
                "sources": [
                    "/var/log/model/*.predlog",
                    {"path": "/sm/*.jsonl", "shape": "sagemaker", "csv_columns": ["a", "b"]},
                    {"path": "/nginx.json", "shape": "nginx", "fields": {"status": "code"}, "duration_unit": "ms"},
                ],
                "from_start": True,
                "poll_interval": "100ms",
            }
        }
    )
    assert config.tail.sources == (
        TailSource("/var/log/model/*.predlog"),
        TailSource("/sm/*.jsonl", "sagemaker", csv_columns=("a", "b")),
        TailSource("/nginx.json", "nginx", fields=(("status", "code"),), duration_unit="ms"),
    )
    assert config.tail.from_start and config.tail.poll_interval == 0.1


def test_prediction_log_section() -> None:
    config = from_dict(
        {"prediction_log": {"path": "/p.predlog", "sample": 0.25, "max_rate": 50, "redact": ["$.inputs[*].data"]}}
    )
    assert config.prediction_log == PredictionLogConfig(
        "/p.predlog", sample=0.25, max_rate=50.0, redact=("$.inputs[*].data",)
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"tail": {"sources": "/x"}},
            "tail.sources: expected a list of sources (a path, or {path, shape, ...}), got '/x'",
        ),
        ({"tail": {"sources": [{"shape": "predlog"}]}}, "tail.sources[0].path: required (a file or a glob)"),
        (
            {"tail": {"sources": [{"path": "/x", "shape": "syslog"}]}},
            "tail.sources[0].shape: expected one of predlog, sagemaker, nginx, envoy, labels, got 'syslog'",
        ),
        (
            {"tail": {"sources": [{"path": "/x", "fields": {"status": "s"}}]}},
            "tail.sources[0]: fields and duration_unit apply to access logs (shape nginx or envoy)",
        ),
        (
            {"tail": {"sources": [{"path": "/x", "shape": "envoy", "fields": {"code": "s"}}]}},
            "tail.sources[0].fields.code: unknown key (allowed: duration, id, method, model, path, request_bytes, "
            "response_bytes, status, time)",
        ),
        (
            {"tail": {"sources": [{"path": "/x", "csv_columns": ["a"]}]}},
            "tail.sources[0].csv_columns: applies to shape sagemaker only",
        ),
        ({"tail": {"max_line_bytes": 0}}, "tail.max_line_bytes: expected a positive integer, got 0"),
        (
            {"prediction_log": {"sample": 1.5}},
            "prediction_log.sample: expected a fraction greater than 0 and at most 1, got 1.5",
        ),
        (
            {"prediction_log": {"max_rate": -1}},
            "prediction_log.max_rate: expected a positive number of records per second, got -1",
        ),
        (
            {"prediction_log": {"redact": ["inputs"]}},
            "prediction_log.redact[0]: expected a JSON path like $.instances[*] (JSON path 'inputs' must start with "
            "'$' (e.g. '$.instances[*]')), got 'inputs'",
        ),
        ({"prediction_log": {"path": ""}}, "prediction_log.path: expected a file path, got ''"),
    ],
)
def test_bad_sections_name_the_path(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert str(err.value) == message


def test_tail_flags_add_sources_and_make_upstream_optional() -> None:
    with pytest.raises(ConfigError, match=r"unless the sidecar only tails logs"):
        validate_complete(Config())
    config = validate_complete(apply_flags(Config(), tail=["/a/*.predlog", "/b.predlog"], from_start=True))
    assert [s.path for s in config.tail.sources] == ["/a/*.predlog", "/b.predlog"]
    assert config.tail.from_start and not config.upstream.url
    with pytest.raises(ConfigError, match=r"^--tail: expected a file path, got ''"):
        apply_flags(Config(), tail=[""])


def test_a_reload_that_changes_tail_needs_a_restart() -> None:
    from exporter.sidecar.settings import RestartOnly

    old = apply_flags(Config(), upstream="http://m:1", tail=["/a.predlog"])
    new = apply_flags(Config(), upstream="http://m:1", tail=["/b.predlog"])
    why = RestartOnly.of(new).change_from(RestartOnly.of(old))
    assert why is not None and why.startswith("tail: changed from") and why.endswith("this needs a restart")
    assert RestartOnly.of(old).change_from(RestartOnly.of(old)) is None
