"""Route normalisation keeps the `route` label bounded whatever path a client sends."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exporter.config import RouteConfig
from exporter.proxy.routes import OTHER, RouteTable


def test_builtin_templates() -> None:
    table = RouteTable()
    cases = {
        b"/v2/models/iris/infer": "/v2/models/{model}/infer",
        b"/v2/models/iris/versions/2/infer?trace=1": "/v2/models/{model}/versions/{version}/infer",
        b"/v2/models/iris/infer/": "/v2/models/{model}/infer",
        b"/v2/health/ready": "/v2/health/ready",
        b"/v1/models/iris:predict": "/v1/models/{model}:predict",
        b"/v1/models/iris/versions/3:predict": "/v1/models/{model}/versions/{version}:predict",
        b"/v1/models/iris": "/v1/models/{model}",
        b"/invocations": "/invocations",
        b"/v1/chat/completions": "/v1/chat/completions",
        b"/api/v1.0/predictions": "/api/v1.0/predictions",
        b"http://host:8000/invocations": "/invocations",
        b"/": OTHER,
        b"/v2/models/a/b/c/infer": OTHER,
        b"/v1/models/a:b:predict": OTHER,
        b"/admin/../invocations": OTHER,
    }
    for target, route in cases.items():
        assert table.match(target)[0] == route, target
        assert table.route(target) == route, target


def test_match_returns_the_model_and_version_segments() -> None:
    table = RouteTable([RouteConfig("/score/{model}", "score"), RouteConfig("/{model}/v/{version}/{model}", "twice")])
    cases = {
        b"/v2/models/iris/infer": ("/v2/models/{model}/infer", "iris", None),
        b"/v2/models/iris/versions/2/infer?trace=1": ("/v2/models/{model}/versions/{version}/infer", "iris", "2"),
        b"/v2/models/iris/versions/2/ready": ("/v2/models/{model}/versions/{version}/ready", "iris", "2"),
        b"/v1/models/iris:predict": ("/v1/models/{model}:predict", "iris", None),
        b"/v1/models/iris/versions/3:predict": ("/v1/models/{model}/versions/{version}:predict", "iris", "3"),
        b"/invocations": ("/invocations", None, None),
        b"/v1/chat/completions": ("/v1/chat/completions", None, None),
        b"/score/fraud": ("score", "fraud", None),
        b"/a/v/7/b": ("twice", "a", "7"),  # the first {model} counts
        b"/nowhere/at/all": (OTHER, None, None),
    }
    for target, expected in cases.items():
        assert table.match(target) == expected, target
        assert table.match(target) is table.match(target)  # cached: no allocation on a hit


def test_configured_patterns_win_over_builtins() -> None:
    table = RouteTable([RouteConfig("/score/{model}", "score"), RouteConfig("/invocations", "mlflow")])
    assert table.route(b"/score/fraud") == "score"
    assert table.route(b"/invocations") == "mlflow"
    assert "score" in table.names and OTHER in table.names


@given(st.binary(max_size=200))
def test_any_target_maps_into_the_fixed_set(target: bytes) -> None:
    table = RouteTable([RouteConfig("/score/{model}", "score")])
    route, model, version = table.match(target)
    assert route in table.names
    assert model is None or (model and "/" not in model and ":" not in model)
    assert version is None


def test_cache_is_bounded() -> None:
    table = RouteTable()
    for i in range(10_000):
        table.match(b"/random/%d" % i)
    assert len(table._cache) <= 4096
