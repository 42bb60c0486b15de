"""Config validation: defaults, flags, and a table of bad configs with their exact messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter.config import (
    Config,
    ConfigError,
    HostPort,
    apply_flags,
    from_dict,
    load_file,
    parse_duration,
    validate_complete,
)


def test_defaults_apply_to_an_empty_document() -> None:
    config = from_dict(None)
    assert config == Config()
    assert config.listen == HostPort("0.0.0.0", 8000)
    assert config.metrics_listen == HostPort("0.0.0.0", 9110)
    assert config.upstream.read_timeout == 60.0
    assert config.health_path == "/v2/health/ready"


def test_full_document() -> None:
    config = from_dict({
        "upstream": {"url": "http://model:8080/", "connect_timeout": "250ms", "read_timeout": 30,
                     "max_connections": 8, "health": {"path": "/ping", "interval": "1m", "timeout": "2s"}},
        "listen": ":8001", "metrics_listen": "127.0.0.1:9200",
        "model": {"name": "fraud", "version": 3, "protocol": "mlflow"},
        "metrics": {"duration_buckets": [0.01, 0.1, 1], "routes": ["/score/{model}", {"pattern": "/p", "name": "p"}]},
    })
    assert config.upstream.url == "http://model:8080"
    assert (config.upstream.host, config.upstream.port) == ("model", 8080)
    assert config.upstream.connect_timeout == 0.25
    assert config.upstream.health.interval == 60.0
    assert config.listen == HostPort("0.0.0.0", 8001)
    assert config.model.version == "3"
    assert config.health_path == "/ping"
    assert config.metrics.duration_buckets == (0.01, 0.1, 1.0)
    assert [r.name for r in config.metrics.routes] == ["/score/{model}", "p"]


def test_shutdown_durations() -> None:
    assert from_dict(None).shutdown.delay == 5.0 and from_dict(None).shutdown.grace_period == 20.0
    config = from_dict({"shutdown": {"delay": 0, "grace_period": "1m"}})
    assert (config.shutdown.delay, config.shutdown.grace_period) == (0.0, 60.0)
    assert from_dict({"shutdown": {"delay": "0s"}}).shutdown.delay == 0.0


def test_client_timeouts_and_limit() -> None:
    client = from_dict(None).client
    assert (client.header_timeout, client.body_timeout, client.keepalive_timeout, client.send_timeout) == (60, 60, 75, 60)
    assert client.max_connections == 4096
    config = from_dict({"client": {"header_timeout": "10s", "keepalive_timeout": "2m", "max_connections": 100}})
    assert (config.client.header_timeout, config.client.keepalive_timeout, config.client.max_connections) == (10, 120, 100)


def test_protocol_sets_the_default_health_path() -> None:
    assert from_dict({"model": {"protocol": "mlflow"}}).health_path == "/ping"


def test_flags_override_the_file() -> None:
    config = from_dict({"upstream": {"url": "http://a:1"}, "model": {"name": "x"}})
    config = apply_flags(config, upstream="http://b:2", listen="127.0.0.1:1", model="y", model_version="7")
    assert config.upstream.url == "http://b:2"
    assert config.listen == HostPort("127.0.0.1", 1)
    assert (config.model.name, config.model.version) == ("y", "7")


@pytest.mark.parametrize("value,seconds", [(5, 5.0), (0.5, 0.5), ("250ms", 0.25), ("2s", 2.0), ("1m", 60.0), ("1.5h", 5400.0)])
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration("x", value) == seconds


BAD_CONFIGS = [
    ({"upstrem": {}}, "upstrem: unknown key (allowed: baseline, capture, client, drift, labels, listen, llm, metrics, metrics_listen, model, performance, prediction_log, push, quality, resources, shutdown, state_dir, tail, upstream, web_config)"),
    ({"capture": {"enabled": "yes"}}, "capture.enabled: expected true or false, got 'yes'"),
    ({"capture": {"max_body_bytes": 1.5}}, "capture.max_body_bytes: expected a positive integer, got 1.5"),
    ({"capture": {"id_header": "X Request"}}, "capture.id_header: expected an HTTP header name, e.g. X-Request-Id, got 'X Request'"),
    ({"resources": {"match": "(["}}, "resources.match: expected a regular expression (unterminated character set at position 1), got '(['"),
    ({"resources": {"gpu": "yes"}}, "resources.gpu: expected one of auto, on, off, got 'yes'"),
    ({"resources": {"interval": "-1s"}}, "resources.interval: expected a duration like 5s, 250ms or a number of seconds, got '-1s'"),
    ({"model": {"custom": {"features": "rows"}}}, "model.custom.features: expected a JSON path like $.instances[*] (JSON path 'rows' must start with '$' (e.g. '$.instances[*]')), got 'rows'"),
    ({"baseline": 3}, "baseline: expected a file path, got 3"),
    ({"drift": {"windows": {"5m": "soon"}}}, "drift.windows.5m: expected a duration like 5s, 250ms or a number of seconds, got 'soon'"),
    ({"drift": {"windows": []}}, "drift.windows: expected a mapping of window name to duration, e.g. {5m: 5m, 1h: 1h}, got {}"),
    ({"drift": {"false_alarm_rate": 1.5}}, "drift.false_alarm_rate: expected a number between 0 and 1 (exclusive), got 1.5"),
    ({"drift": {"numeric_methods": ["psi", "magic"]}}, "drift.numeric_methods[1]: expected one of psi, kl, js, ks, wasserstein, chisquare, linf, got 'magic'"),
    ({"drift": {"columns": {"age": {"method": "ks", "threshold": -1}}}}, "drift.columns.age.threshold.ks: expected a positive number, got -1"),
    ({"drift": {"columns": {"age": {"method": ["ks", "psi"], "threshold": 0.2}}}}, "drift.columns.age.threshold: expected a mapping of method to threshold when the column has not exactly one method, got 0.2"),
    ({"drift": {"columns": {"age": {"weight": 1}}}}, "drift.columns.age.weight: unknown key (allowed: method, threshold)"),
    ({"quality": {"range_tolerance": -0.1}}, "quality.range_tolerance: expected a number from 0 to 10 (a fraction of the baseline range), got -0.1"),
    ({"quality": {"range_tolerance": 11}}, "quality.range_tolerance: expected a number from 0 to 10 (a fraction of the baseline range), got 11"),
    ({"quality": {"bounds": {"age": {"min": 10, "max": 5}}}}, "quality.bounds.age.max: expected max >= min (10), got 5"),
    ({"model": {"known": "iris"}}, "model.known: expected a list of strings, got 'iris'"),
    ({"model": {"protocol": "custom"}}, "model.custom: required when model.protocol is custom (JSON paths: features, predictions, id)"),
    ({"model": {"custom": {"predictions": "$.p"}}}, "model.custom.features: required (a JSON path to the feature rows, e.g. $.rows[*])"),
    ([1, 2], "config: expected a mapping, got [1, 2]"),
    ({"upstream": {"url": "https://m:443"}}, "upstream.url: expected an http:// URL (the proxy speaks plain HTTP/1.1 to the model server), got 'https://m:443'"),
    ({"upstream": {"url": "http://m:8080/v2"}}, "upstream.url: expected a URL without path or query (paths are forwarded as the client sent them), got 'http://m:8080/v2'"),
    ({"upstream": {"url": "http://m:99999"}}, "upstream.url: expected a port between 1 and 65535, got 'http://m:99999'"),
    ({"upstream": {"url": 8080}}, "upstream.url: expected an http:// URL, e.g. http://127.0.0.1:8080, got 8080"),
    ({"upstream": {"read_timeout": "soon"}}, "upstream.read_timeout: expected a duration like 5s, 250ms or a number of seconds, got 'soon'"),
    ({"upstream": {"read_timeout": -1}}, "upstream.read_timeout: expected a positive duration, got -1"),
    ({"shutdown": {"delay": "-1s"}}, "shutdown.delay: expected a duration like 5s, 250ms or a number of seconds, got '-1s'"),
    ({"shutdown": {"delay": -2}}, "shutdown.delay: expected a non-negative duration, got -2"),
    ({"shutdown": {"grace_period": 0}}, "shutdown.grace_period: expected a positive duration, got 0"),
    ({"upstream": {"max_connections": 0}}, "upstream.max_connections: expected a positive integer, got 0"),
    ({"client": {"body_timeout": 0}}, "client.body_timeout: expected a positive duration, got 0"),
    ({"client": {"idle_timeout": "5s"}}, "client.idle_timeout: unknown key (allowed: body_timeout, header_timeout, keepalive_timeout, max_connections, send_timeout)"),
    ({"upstream": {"max_connections": True}}, "upstream.max_connections: expected a positive integer, got True"),
    ({"upstream": {"health": {"path": "ready"}}}, "upstream.health.path: expected a URL path starting with /, got 'ready'"),
    ({"upstream": {"health": {"every": "5s"}}}, "upstream.health.every: unknown key (allowed: interval, path, timeout)"),
    ({"upstream": "http://m:1"}, "upstream: expected a mapping, got 'http://m:1'"),
    ({"listen": "8000"}, "listen: expected HOST:PORT, e.g. 0.0.0.0:8000, got '8000'"),
    ({"metrics_listen": "0.0.0.0:0"}, "metrics_listen: expected a port between 1 and 65535, got '0.0.0.0:0'"),
    ({"model": {"protocol": "grpc"}}, "model.protocol: expected one of auto, v2, v1, mlflow, seldon, openai, tgi, ollama, custom, got 'grpc'"),
    ({"model": {"name": ""}}, "model.name: expected a non-empty string, got ''"),
    ({"llm": {"prices": {"llama3": {"prompt": -1}}}}, "llm.prices.llama3.prompt: expected a price per 1M tokens, a number >= 0, got -1"),
    ({"llm": {"prices": {"llama3": {"output": 1}}}}, "llm.prices.llama3.output: unknown key (allowed: completion, prompt)"),
    ({"llm": {"prices": ["llama3"]}}, "llm.prices: expected a mapping of model name to {prompt, completion} prices per 1M tokens, got ['llama3']"),
    ({"llm": {"currency": "US dollars"}}, "llm.currency: expected a currency code such as USD or EUR, got 'US dollars'"),
    ({"metrics": {"duration_buckets": [0.1, 0.05]}}, "metrics.duration_buckets[1]: expected buckets in increasing order (after 0.1), got 0.05"),
    ({"metrics": {"duration_buckets": []}}, "metrics.duration_buckets: expected a non-empty list of increasing positive numbers, got []"),
    ({"metrics": {"size_buckets": [1, "big"]}}, "metrics.size_buckets[1]: expected a positive number, got 'big'"),
    ({"metrics": {"routes": [{"pattern": "score"}]}}, "metrics.routes[0].pattern: expected a path template starting with /, e.g. /predict/{model}, got 'score'"),
    ({"metrics": {"routes": [{"pattern": "/a", "label": "x"}]}}, "metrics.routes[0].label: unknown key (allowed: name, pattern)"),
]


@pytest.mark.parametrize("raw,message", BAD_CONFIGS, ids=[m.split(":")[0] for _, m in BAD_CONFIGS])
def test_bad_configs_name_path_and_value(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert str(err.value) == message


@pytest.mark.parametrize("flag,kwargs,message", [
    ("--upstream", {"upstream": "ftp://x"}, "--upstream: expected an http:// URL (the proxy speaks plain HTTP/1.1 to the model server), got 'ftp://x'"),
    ("--listen", {"listen": "localhost"}, "--listen: expected HOST:PORT, e.g. 0.0.0.0:8000, got 'localhost'"),
    ("--metrics-listen", {"metrics_listen": "h:70000"}, "--metrics-listen: expected a port between 1 and 65535, got 'h:70000'"),
])
def test_bad_flags_name_the_flag(flag: str, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        apply_flags(Config(), **kwargs)
    assert str(err.value) == message


def test_cross_field_checks() -> None:
    with pytest.raises(ConfigError, match=r"^upstream.url: required"):
        validate_complete(Config())
    same = apply_flags(Config(), upstream="http://m:1", listen="0.0.0.0:9110")
    with pytest.raises(ConfigError, match=r"^metrics_listen: must differ from listen \(both 0.0.0.0:9110\)"):
        validate_complete(same)


def test_file_errors_carry_the_file_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("upstream:\n  url: http://m:1\n  read_timeout: forever\n")
    with pytest.raises(ConfigError) as err:
        load_file(bad)
    assert str(err.value) == f"{bad}: upstream.read_timeout: expected a duration like 5s, 250ms or a number of seconds, got 'forever'"

    broken = tmp_path / "broken.yml"
    broken.write_text("upstream:\n  url: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"^{broken}:3:1: invalid YAML"):
        load_file(broken)

    with pytest.raises(ConfigError, match=r"cannot read config: No such file or directory"):
        load_file(tmp_path / "missing.yml")


def test_shipped_example_config_is_valid() -> None:
    config = load_file(Path(__file__).parent.parent / "examples" / "config.yml")
    assert config.upstream.url


CROSS_FIELD = [
    ({"upstream": {"url": "http://m:1"}, "listen": "0.0.0.0:9110"},
     "metrics_listen: must differ from listen (both 0.0.0.0:9110); admin endpoints never share the proxy port"),
    ({"listen": ":8000"}, "upstream.url: required (set it in the config or pass --upstream http://HOST:PORT)"),
]


@pytest.mark.parametrize("raw,message", CROSS_FIELD + BAD_CONFIGS[:3],
                         ids=[m.split(":")[0] for _, m in CROSS_FIELD + BAD_CONFIGS[:3]])
def test_check_config_gives_the_verdict_run_gives(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   raw: object, message: str) -> None:
    """`check-config FILE` runs every check `run --config FILE` runs, with the same message."""
    from exporter.cli import main

    path = tmp_path / "cfg.yml"
    path.write_text(yaml.safe_dump(raw))
    verdicts = []
    for argv in (["check-config", str(path)], ["run", "--config", str(path)]):
        code = main(argv)
        verdicts.append((code, capsys.readouterr().err))
    assert verdicts[0] == verdicts[1]
    assert verdicts[0][0] == 2
    assert message in verdicts[0][1]


def test_check_config_takes_the_flags_run_takes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from exporter.cli import main

    path = tmp_path / "cfg.yml"
    path.write_text("listen: 127.0.0.1:18000\n")  # the upstream comes from the flag, as it would for run
    assert main(["check-config", str(path)]) == 2
    assert "upstream.url: required" in capsys.readouterr().err
    assert main(["check-config", str(path), "--upstream", "http://127.0.0.1:8080"]) == 0
    assert "OK (upstream http://127.0.0.1:8080" in capsys.readouterr().out
    assert main(["check-config", str(path), "--upstream", "http://127.0.0.1:8080", "--metrics-listen", "127.0.0.1:18000"]) == 2
    assert "metrics_listen: must differ from listen" in capsys.readouterr().err
