"""Demo pieces: a V2 model server, a traffic generator with drift, and a one-command runner."""
