"""deploy/kubernetes/: the manifests parse, and names, ports, probes and labels agree across them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import yaml
from bundle_support import LOOPBACK, PROMETHEUS, REPO, load_yaml, sidecar_sources, watches_a_process

DEPLOY = REPO / "deploy" / "kubernetes"


def _documents() -> dict[str, dict[str, Any]]:
    """kind → manifest (one of each kind here)."""
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        with path.open(encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    assert doc["kind"] not in docs, f"two {doc['kind']} manifests"
                    docs[doc["kind"]] = doc
    return docs


DOCS = _documents()
POD = DOCS["Deployment"]["spec"]["template"]
CONTAINERS = {c["name"]: c for c in POD["spec"]["containers"]}
SIDECAR = CONTAINERS["model-exporter"]
MODEL = CONTAINERS["model"]


def _arg(flag: str) -> str:
    args = [str(a) for a in SIDECAR["args"]]
    return args[args.index(flag) + 1]


def _port(container: dict[str, Any], name: str) -> int:
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return port


def test_manifests_parse_and_kustomization_lists_them() -> None:
    assert set(DOCS) == {"Deployment", "Service", "PodMonitor", "Kustomization"}
    assert DOCS["PodMonitor"]["apiVersion"] == "monitoring.coreos.com/v1"
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(DOCS["Kustomization"]["resources"]) == files


def test_model_server_and_sidecar_share_the_pod() -> None:
    assert set(CONTAINERS) == {"model", "model-exporter"}
    assert SIDECAR["args"][0] == "run"
    upstream = urlsplit(_arg("--upstream"))
    assert upstream.hostname in LOOPBACK
    assert upstream.port == _port(MODEL, "model-http")
    assert int(_arg("--listen").rsplit(":", 1)[1]) == _port(SIDECAR, "http")
    assert int(_arg("--metrics-listen").rsplit(":", 1)[1]) == _port(SIDECAR, "metrics")



def test_sidecar_sees_the_model_server_process() -> None:
    """Resource metrics: a shared PID namespace, a process collector, and one user for both containers."""
    spec = POD["spec"]
    assert spec.get("shareProcessNamespace") is True
    assert watches_a_process(sidecar_sources(SIDECAR["args"])), \
        "no process collector: the upstream is not on loopback and no resources.pid/match is set"
    # /proc/PID/fd of another process: the same user (set once for the pod, overridden by neither)
    assert spec["securityContext"].get("runAsUser") is not None
    for container in CONTAINERS.values():
        overrides = container.get("securityContext", {}).keys() & {"runAsUser", "runAsGroup"}
        assert not overrides, f"{container['name']} overrides {sorted(overrides)}"


def test_sidecar_probes() -> None:
    assert SIDECAR["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}
    assert SIDECAR["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}


def test_podmonitor_scrapes_the_sidecar_metrics_port_as_job_model_exporter() -> None:
    spec = DOCS["PodMonitor"]["spec"]
    pod_labels = POD["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in SIDECAR["ports"]}
    assert endpoint["port"] == "metrics" and endpoint.get("path", "/metrics") == "/metrics"
    # the shipped rules select up{job="model-exporter"}, the job of prometheus/prometheus.yml
    jobs = [r["replacement"] for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    scrape_jobs = {j["job_name"] for j in load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]}
    assert jobs == ["model-exporter"] and "model-exporter" in scrape_jobs


def test_service_sends_clients_to_the_proxy_port() -> None:
    spec = DOCS["Service"]["spec"]
    assert spec["selector"].items() <= POD["metadata"]["labels"].items()
    assert [p["targetPort"] for p in spec["ports"]] == ["http"]
    assert "http" in {p["name"] for p in SIDECAR["ports"]}


def test_deployment_selector_matches_its_pods() -> None:
    selector = DOCS["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= POD["metadata"]["labels"].items()


def test_pod_grace_period_covers_the_sidecars_drain_and_the_model_outlives_it() -> None:
    from exporter.config import ShutdownConfig

    drain = ShutdownConfig().delay + ShutdownConfig().grace_period
    assert POD["spec"]["terminationGracePeriodSeconds"] >= drain + 10
    command = MODEL["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and float(command[1]) >= drain
