"""The hot path: a lean HTTP/1.1 reverse proxy that times every exchange."""
