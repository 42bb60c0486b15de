"""model-exporter: a sidecar that turns model-server traffic into Prometheus metrics."""

__version__ = "0.1.0"
