"""The analysis worker process (`python -m exporter.worker FD`): events in, analysis, metric families out.

Every source of exchanges (the proxy today; log tailing and pushes later) reaches it through the
same bounded link as `events.Event`s; it parses payloads (exporter.adapters) and feeds the
analyzers (exporter.analyzers). See docs/architecture.md.
"""
