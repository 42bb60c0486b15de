"""docker-compose.yml, Dockerfile, .dockerignore: every referenced file exists, and ports and paths agree with the shipped configs."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
from bundle_support import (
    ALERTMANAGER,
    GRAFANA,
    LOOPBACK,
    PROMETHEUS,
    REPO,
    load_yaml,
    sidecar_sources,
    watches_a_process,
)

COMPOSE = load_yaml(REPO / "docker-compose.yml")
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
LONG_RUNNING = ("model", "model-exporter", "prometheus", "alertmanager", "grafana")


def _command(service: str) -> list[str]:
    command = SERVICES[service].get("command", [])
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _flag(service: str, flag: str) -> str:
    """Value of `--flag value` or `--flag=value` in a service's command."""
    command = _command(service)
    for i, part in enumerate(command):
        if part == flag:
            return command[i + 1]
        if part.startswith(flag + "="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{service}: no {flag} in {command}")


def _port(host_port: str) -> int:
    return int(host_port.rsplit(":", 1)[1])


def _binds(service: str) -> list[tuple[str, str, bool]]:
    """(source relative to the repo, container path, read-only) of a service's bind mounts."""
    out = []
    for volume in SERVICES[service].get("volumes", []):
        parts = volume.split(":")
        if parts[0].startswith((".", "/")):
            out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def _repo_path(service: str, container_path: str) -> PurePosixPath:
    """The repository file a container path of `service` is mounted from."""
    for source, target, _ in _binds(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            rest = container_path[len(target):].lstrip("/")
            return PurePosixPath(source) / rest if rest else PurePosixPath(source)
    raise AssertionError(f"{service}: {container_path} is not mounted from the repository")


def test_services() -> None:
    assert set(SERVICES) == {"model", "model-exporter", "traffic", "prometheus", "alertmanager", "grafana"}


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        if "build" in service:
            continue  # built from this repository
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"


def test_build_context_and_dockerfile_exist() -> None:
    for name, service in SERVICES.items():
        if "build" in service:
            build = service["build"]
            context = REPO / build["context"]
            assert context.is_dir(), name
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_bind_mounts_exist_and_are_read_only() -> None:
    for name in SERVICES:
        for source, target, read_only in _binds(name):
            assert (REPO / source).exists(), f"{name}: {source} does not exist"
            assert read_only, f"{name}: {source} → {target} should be mounted read-only"


def test_healthchecks() -> None:
    for name in LONG_RUNNING:
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and any("http://127.0.0.1:" in part for part in test), name


def test_demo_services_run_the_demo_modules() -> None:
    assert SERVICES["model"]["entrypoint"] == ["python", "-m", "exporter.demo.model_server"]
    assert _flag("model", "--host") == "127.0.0.1"
    assert SERVICES["traffic"]["entrypoint"] == ["python", "-m", "exporter.demo.traffic"]
    assert _command("model-exporter")[0] == "run"
    assert (_flag("model-exporter", "--model"), _flag("model-exporter", "--model-version")) == ("demo-model", "1")
    assert SERVICES["traffic"]["depends_on"]["model-exporter"]["condition"] == "service_healthy"


def test_ports_agree_between_services_and_configs() -> None:
    # sidecar → model server, on the loopback of the network namespace they share
    upstream = urlsplit(_flag("model-exporter", "--upstream"))
    assert (upstream.hostname, upstream.port) == ("127.0.0.1", int(_flag("model", "--port")))
    # traffic → sidecar proxy port
    target = urlsplit(_flag("traffic", "--target"))
    assert (target.hostname, target.port) == ("model-exporter", _port(_flag("model-exporter", "--listen")))
    # Prometheus → sidecar metrics port, and → Alertmanager
    prometheus = load_yaml(PROMETHEUS / "prometheus.yml")
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "model-exporter"]
    (scrape,) = job["static_configs"][0]["targets"]
    assert scrape == f"model-exporter:{_port(_flag('model-exporter', '--metrics-listen'))}"
    (alertmanager,) = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = alertmanager.split(":")
    assert host in SERVICES and f"{port}:{port}" in SERVICES[host]["ports"]
    # Grafana → Prometheus
    (source,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname in SERVICES and f"{url.port}:{url.port}" in SERVICES[url.hostname]["ports"]
    # the sidecar's two ports are published
    assert {"8000:8000", "9110:9110"} <= set(SERVICES["model-exporter"]["ports"])



# -- the sidecar sees the model server (the Resources dashboard) --------------------------

def test_model_server_runs_in_the_sidecars_network_and_pid_namespaces() -> None:
    model = SERVICES["model"]
    assert model["network_mode"] == "service:model-exporter"
    # the sidecar's process collector reads the model server's /proc entries
    assert model["pid"] == "service:model-exporter"
    # ports are the namespace owner's to publish; the model listens on loopback only
    assert "ports" not in model
    assert _flag("model", "--host") in LOOPBACK
    # reading another process's open files needs the same user: same image, no override
    assert model["image"] == SERVICES["model-exporter"]["image"]
    assert model.get("user") == SERVICES["model-exporter"].get("user")


def test_sidecar_finds_the_model_server_process() -> None:
    """The sidecar's flags give it a process collector, and it looks where the model server listens."""
    upstream = urlsplit(_flag("model-exporter", "--upstream"))
    assert upstream.hostname in LOOPBACK and upstream.port == int(_flag("model", "--port"))
    assert watches_a_process(sidecar_sources(_command("model-exporter"))), \
        "no process collector: the upstream is not on loopback and no resources.pid/match is set"


def test_services_do_not_depend_on_each_other_in_a_cycle() -> None:
    def dependencies(name: str) -> set[str]:
        service = SERVICES[name]
        found = set(service.get("depends_on", []))
        for key in ("network_mode", "pid", "ipc"):
            if str(service.get(key, "")).startswith("service:"):
                found.add(service[key].removeprefix("service:"))
        return found

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' → '.join((*path, name))}"
        for dependency in dependencies(name):
            assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"
            visit(dependency, (*path, name))

    for name in SERVICES:
        visit(name, ())

def test_prometheus_and_alertmanager_read_the_shipped_configs() -> None:
    config = _repo_path("prometheus", _flag("prometheus", "--config.file"))
    assert REPO / config == PROMETHEUS / "prometheus.yml"
    # rule_files are relative to the config file, which sits beside rules/ in the mount
    for pattern in load_yaml(PROMETHEUS / "prometheus.yml")["rule_files"]:
        assert list((REPO / config).parent.glob(pattern)), pattern
    config = _repo_path("alertmanager", _flag("alertmanager", "--config.file"))
    assert REPO / config == ALERTMANAGER / "alertmanager.yml"


def test_grafana_provisioning_dashboards_and_home() -> None:
    assert REPO / _repo_path("grafana", "/etc/grafana/provisioning") == GRAFANA / "provisioning"
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "model-exporter.yml")["providers"]
    assert REPO / _repo_path("grafana", provider["options"]["path"]) == GRAFANA / "dashboards"
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    home_file = REPO / _repo_path("grafana", home)
    assert json.loads(home_file.read_text(encoding="utf-8"))["uid"] == "model-overview"


# -- Dockerfile -------------------------------------------------------------------------

DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
INSTRUCTIONS = [line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
                if line.strip() and not line.lstrip().startswith("#")]


def _instructions(keyword: str) -> list[str]:
    return [line[len(keyword):].strip() for line in INSTRUCTIONS if line.upper().startswith(keyword + " ")]


def test_dockerfile_runs_the_sidecar_as_non_root() -> None:
    froms = _instructions("FROM")
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    (user,) = _instructions("USER")
    assert user not in {"root", "0"}
    assert set(" ".join(_instructions("EXPOSE")).split()) == {"8000", "9110"}
    assert [json.loads(e) for e in _instructions("ENTRYPOINT")] == [["model-exporter"]]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "model-exporter" in scripts


def _dockerignored(path: str) -> bool:
    """.dockerignore semantics, enough for our file: last matching pattern wins; a parent's match counts."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    ignored = False
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        for i in range(1, len(parts) + 1):
            candidate = "/".join(parts[:i])
            if fnmatch.fnmatch(candidate, body) or (pattern.lstrip("!").startswith("**/")
                                                    and fnmatch.fnmatch(parts[i - 1], body)):
                ignored = not negate
                break
    return ignored


@pytest.mark.parametrize("source", [s for c in _instructions("COPY") if not c.startswith("--from")
                                    for s in c.split()[:-1]])
def test_dockerfile_copies_files_that_exist_and_are_not_ignored(source: str) -> None:
    assert (REPO / source).exists(), source
    assert not _dockerignored(source), f"{source} is excluded by .dockerignore"
    assert not _dockerignored(f"{source}/__init__.py" if (REPO / source).is_dir() else source)


def test_dockerignore_keeps_the_build_context_small() -> None:
    for path in (".git/config", ".venv/bin/python", "tests/bundle/test_bundle_compose.py", "exporter/__pycache__/x.pyc"):
        assert _dockerignored(path), path
