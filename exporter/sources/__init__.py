"""Sources of exchanges besides the proxy: log files followed by `run --tail` (the proxy process)."""
