"""Analyzers consume extracted rows in the worker process and hold bounded state."""
