"""Settings derived from a config once, for startup and reload alike."""

from __future__ import annotations

import dataclasses

from exporter.config import HostPort, from_dict
from exporter.sidecar.settings import ProxySettings, RestartOnly


def test_restart_only_names_the_first_changed_setting() -> None:
    base = from_dict({"upstream": {"url": "http://m:1"}})
    assert RestartOnly.of(base).change_from(RestartOnly.of(base)) is None
    moved = dataclasses.replace(base, listen=HostPort("0.0.0.0", 8001))
    assert RestartOnly.of(moved).change_from(RestartOnly.of(base)) == \
        "listen: changed from 0.0.0.0:8000 to 0.0.0.0:8001; this needs a restart"
    other = from_dict({"upstream": {"url": "http://m:2"}})
    assert (RestartOnly.of(other).change_from(RestartOnly.of(base)) or "").startswith("upstream_url: changed from")
    reloadable = from_dict({"upstream": {"url": "http://m:1", "read_timeout": "5s"}, "capture": {"max_body_bytes": 10}})
    assert RestartOnly.of(reloadable).change_from(RestartOnly.of(base)) is None


def test_proxy_settings_derive_capture_and_probe() -> None:
    config = from_dict({"upstream": {"url": "http://m:1", "health": {"path": "/ready"}},
                        "capture": {"id_header": "X-Trace", "max_body_bytes": 2048},
                        "metrics": {"routes": [{"pattern": "/score/{model}", "name": "score"}]}})
    s = ProxySettings.of(config)
    assert s.probe_url == "http://m:1/ready"
    assert b"x-trace" in s.capture_headers and b"content-type" in s.capture_headers
    assert s.capture_limit == 2048
    assert "score" in s.capture_routes and "/v2/models/{model}/infer" in s.capture_routes
    off = ProxySettings.of(from_dict({"upstream": {"url": "http://m:1"}, "capture": {"enabled": False}}))
    assert off.capture_routes == frozenset()


def test_expositions_join_with_one_eof() -> None:
    from exporter.metrics.exposition import OPENMETRICS, TEXT, join, negotiate

    assert negotiate(None)[0] == TEXT
    assert negotiate("application/openmetrics-text; version=1.0.0")[0] == OPENMETRICS
    assert join(TEXT, b"a 1\n", b"b 2\n") == b"a 1\nb 2\n"
    assert join(OPENMETRICS, b"a 1\n# EOF\n", b"b 2\n# EOF\n") == b"a 1\nb 2\n# EOF\n"
    assert join(OPENMETRICS, b"a 1\n# EOF\n", b"") == b"a 1\n# EOF\n"
