"""The web config file (exporter-toolkit format): a table of bad documents with their messages."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from exporter.config import ConfigError
from exporter.sidecar.web_config import BasicAuth, parse_web_config

BAD: list[tuple[Any, str]] = [
    ([1], "web.yml: expected a mapping with tls_server_config and/or basic_auth_users, got [1]"),
    ({"http_server_config": {"http2": True}}, "web.yml: http_server_config: not supported by model-exporter"),
    ({"tls_server_config": {"key_file": "k"}}, "web.yml: tls_server_config.cert_file: expected a file path (required), got None"),
    ({"tls_server_config": {"cert_file": "c", "key_file": "k", "client_auth_type": "Yes"}},
     "web.yml: tls_server_config.client_auth_type: expected one of NoClientCert, RequestClientCert"),
    ({"tls_server_config": {"cert_file": "c", "key_file": "k", "client_auth_type": "RequireAndVerifyClientCert"}},
     "web.yml: tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert"),
    ({"tls_server_config": {"cert_file": "c", "key_file": "k", "min_version": "SSL3"}},
     "web.yml: tls_server_config.min_version: expected one of TLS10, TLS11, TLS12, TLS13, got 'SSL3'"),
    ({"tls_server_config": {"cert_file": "c", "key_file": "k", "cipher_suites": []}},
     "web.yml: tls_server_config.cipher_suites: unknown or unsupported key"),
    ({"basic_auth_users": {"alice": "plaintext"}},
     "web.yml: basic_auth_users.alice: expected a bcrypt hash ($2y$…), got '<hidden>'"),
]


@pytest.mark.parametrize("raw,message", BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_bad_web_configs_name_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_web_config(raw, "web.yml", Path("/etc/x"))
    assert str(err.value).startswith(message)


def test_paths_are_relative_to_the_file() -> None:
    web = parse_web_config({"tls_server_config": {"cert_file": "a.crt", "key_file": "/abs/a.key"}}, "w", Path("/etc/x"))
    assert web.tls is not None and (web.tls.cert_file, web.tls.key_file) == ("/etc/x/a.crt", "/abs/a.key")


def test_basic_auth_checks_and_caches() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    auth = BasicAuth((("alice", hashed),))

    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async def checks() -> list[bool]:
        return [await auth.check(h) for h in (header("alice", "pw"), header("alice", "no"), header("bob", "pw"),
                                              "Basic !!!", None, "Bearer x", header("alice", "pw"))]

    assert asyncio.run(checks()) == [True, False, False, False, False, False, True]
    assert len(auth._cache) == 3  # the repeated header was answered from the cache
