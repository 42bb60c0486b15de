"""The proxy process: startup and shutdown, the metrics port, readiness, reload, the link to the worker.

It forwards traffic (exporter.proxy), collects at scrape time (exporter.collectors) and never
imports the analysis worker's packages: the worker is started as a program (docs/architecture.md).
"""
