"""Metric definitions (the single source of truth) and their exposition."""
