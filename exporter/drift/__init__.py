"""Drift: statistics over binned counts and the sliding windows that feed them."""
