"""`model-exporter batch`: a batch job's inputs and outputs through the sidecar's analyzers, results to a Pushgateway or a textfile."""
