"""Defaults of the baseline build that the command line shows; no numpy here, so `--help` stays light."""

DEFAULT_PSI_BINS = 10  # coarse PSI bins per numeric column
DEFAULT_CHUNK_ROWS = 10_000  # rows read per chunk: memory does not grow with the file
