"""TLS and basic auth on the metrics port, from a web config file in the exporter-toolkit format.

The same file node_exporter and the other Prometheus exporters take (`--web.config.file`), so a
Prometheus `scrape_config` with `scheme: https`, `tls_config` and `basic_auth` works unchanged:

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # default NoClientCert
      client_ca_file: ca.crt
      min_version: TLS12             # TLS10 .. TLS13
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\\n')

When users are configured every endpoint but /-/healthy and /-/ready (kubelet probes, which
reveal nothing) asks for them. Checking a bcrypt hash costs tens of milliseconds: it runs off
the event loop, and the outcome for a given header is cached (bounded).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ssl
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from exporter.config import ConfigError

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})
CACHE_SIZE = 1024


@dataclass(frozen=True)
class TLSConfig:
    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"
    max_version: str | None = None


@dataclass(frozen=True)
class WebConfig:
    tls: TLSConfig | None = None
    users: tuple[tuple[str, str], ...] = ()  # (user, bcrypt hash)


def _fail(where: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{where}: {expected}, got {value!r}")


def parse_web_config(raw: Any, origin: str, base: Path) -> WebConfig:
    """Validate a parsed web config document; errors name the file and the key."""
    if raw is None:
        return WebConfig()
    if not isinstance(raw, dict):
        raise _fail(origin, raw, "expected a mapping with tls_server_config and/or basic_auth_users")
    for key in raw:
        if key not in ("tls_server_config", "basic_auth_users"):
            raise ConfigError(
                f"{origin}: {key}: not supported by model-exporter (supported: tls_server_config, basic_auth_users)"
            )
    tls = None
    if raw.get("tls_server_config") is not None:
        section = raw["tls_server_config"]
        where = f"{origin}: tls_server_config"
        if not isinstance(section, dict):
            raise _fail(where, section, "expected a mapping")
        for key in section:
            if key not in TLS_KEYS:
                raise ConfigError(
                    f"{where}.{key}: unknown or unsupported key (supported: {', '.join(sorted(TLS_KEYS))})"
                )
        for key in ("cert_file", "key_file"):
            if not isinstance(section.get(key), str) or not section[key]:
                raise _fail(f"{where}.{key}", section.get(key), "expected a file path (required)")
        auth = section.get("client_auth_type", "NoClientCert")
        if auth not in CLIENT_AUTH:
            raise _fail(f"{where}.client_auth_type", auth, f"expected one of {', '.join(CLIENT_AUTH)}")
        ca = section.get("client_ca_file")
        if auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not ca:
            raise ConfigError(f"{where}.client_ca_file: required with client_auth_type {auth}")
        for key in ("min_version", "max_version"):
            if key in section and section[key] not in VERSIONS:
                raise _fail(f"{where}.{key}", section[key], f"expected one of {', '.join(VERSIONS)}")

        def resolve(name: str | None) -> str | None:
            return None if name is None else str(base / name)

        tls = TLSConfig(
            resolve(section["cert_file"]) or "",
            resolve(section["key_file"]) or "",
            auth,
            resolve(ca),
            section.get("min_version", "TLS12"),
            section.get("max_version"),
        )
    users: list[tuple[str, str]] = []
    if raw.get("basic_auth_users") is not None:
        section = raw["basic_auth_users"]
        if not isinstance(section, dict):
            raise _fail(f"{origin}: basic_auth_users", section, "expected a mapping of user name to bcrypt hash")
        for user, hashed in section.items():
            if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise _fail(f"{origin}: basic_auth_users.{user}", "<hidden>", "expected a bcrypt hash ($2y$…)")
            users.append((str(user), hashed))
    return WebConfig(tls, tuple(users))


def load_web_config(path: str) -> WebConfig:
    """Read, validate and try out a web config file (the TLS files must load)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read web config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    web = parse_web_config(raw, path, Path(path).parent)
    ssl_context(web, path)  # certificate and key errors surface now, not at the first scrape
    if web.users:
        import bcrypt  # noqa: F401  # present when basic auth is used: fail at start, not at the first scrape
    return web


def ssl_context(web: WebConfig, origin: str = "web config") -> ssl.SSLContext | None:
    tls = web.tls
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[tls.min_version]
    if tls.max_version is not None:
        context.maximum_version = VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{origin}: tls_server_config: cannot load cert_file {tls.cert_file} / key_file {tls.key_file}: {exc}"
        ) from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{origin}: tls_server_config.client_ca_file: cannot load {tls.client_ca_file}: {exc}"
            ) from None
    return context


class BasicAuth:
    """Checks an Authorization header against the configured users; outcomes cached per header."""

    def __init__(self, users: tuple[tuple[str, str], ...]) -> None:
        self.users = {user: hashed.encode() for user, hashed in users}
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._dummy = next(iter(self.users.values()), b"")  # unknown users cost a check too (no timing oracle)
        self._checking = asyncio.Semaphore(1)

    async def check(self, header: str | None) -> bool:
        if not header or not header.lower().startswith("basic "):
            return False
        key = hashlib.sha256(header.encode("latin-1", "replace")).digest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        async with self._checking:  # a flood of wrong passwords costs one core at most
            ok = await asyncio.to_thread(self._verify, password.encode(), hashed or self._dummy)
        ok = ok and hashed is not None
        self._cache[key] = ok
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return ok

    @staticmethod
    def _verify(password: bytes, hashed: bytes) -> bool:
        import bcrypt

        try:
            return bool(bcrypt.checkpw(password, hashed))
        except ValueError:  # a malformed hash: never a match
            return False
