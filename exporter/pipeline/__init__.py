"""Off the hot path: captured exchanges go to an analysis worker process in batches."""
