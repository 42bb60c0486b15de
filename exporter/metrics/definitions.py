"""Every metric the exporter defines: name, type, help, labels, buckets — defined once here.

Collectors, dashboards, rules and docs/metrics.md are all checked against this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

# Model serving spans 1 ms (a tiny tabular model) to a minute (an LLM generation).
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
# Payloads from a few hundred bytes (one tabular row) to tens of MB (images, tensors).
DEFAULT_SIZE_BUCKETS: tuple[float, ...] = tuple(float(4**i * 64) for i in range(11))  # 64 B .. 64 MiB
# Labels arrive seconds (a click) to weeks (a loan default) after the prediction.
LABEL_DELAY_BUCKETS: tuple[float, ...] = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 10800.0, 21600.0, 86400.0, 604800.0)

# LLM histograms: the OpenTelemetry GenAI semantic conventions' suggested boundaries
# (gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token,
# gen_ai.server.request.duration, gen_ai.client.token.usage). Inter-token latency and time per
# output token start at 1 ms rather than OTel's 10 ms: a small model on a GPU streams tokens a few
# ms apart, and a sidecar's share of that gap is what its users ask about.
LLM_TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
LLM_TOKEN_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
LLM_DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
LLM_TOKEN_BUCKETS: tuple[float, ...] = (
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
)  # fmt: skip
# The share of a streamed request's duration before its first token (queueing and prefill).
LLM_SHARE_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
# Output tokens per second of one request: from a slow CPU model to a fast GPU one.
LLM_TOKEN_RATE_BUCKETS: tuple[float, ...] = (1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0, 200.0, 400.0)

MODEL_LABELS = ("model", "version")


@dataclass(frozen=True)
class MetricDef:
    name: str  # the family name, as exposed (counters include _total)
    type: str  # counter | gauge | histogram | info
    help: str
    labels: tuple[str, ...] = ()
    model_level: bool = True  # carries the model and version labels
    family: str = "traffic"


def _d(
    name: str,
    type_: str,
    help_: str,
    labels: tuple[str, ...] = (),
    *,
    model_level: bool = True,
    family: str = "traffic",
) -> MetricDef:
    return MetricDef(name, type_, help_, labels, model_level, family)


METRICS: tuple[MetricDef, ...] = (
    # traffic (the proxy's RED metrics)
    _d(
        "model_requests_total",
        "counter",
        "Requests proxied to the model server, by normalised route, method and status code (499: client went away; a code outside IANA's registry: other).",
        ("route", "method", "code"),
    ),
    _d(
        "model_request_duration_seconds",
        "histogram",
        "Time from the first request byte to the last response byte, as seen by the sidecar.",
        ("route", "method", "code"),
    ),
    _d(
        "model_time_to_first_byte_seconds",
        "histogram",
        "Time from the first request byte to the first response byte from the model server.",
        ("route",),
    ),
    _d(
        "model_request_size_bytes",
        "histogram",
        "Request body size in bytes (as sent, before any decompression).",
        ("route",),
    ),
    _d(
        "model_response_size_bytes",
        "histogram",
        "Response body size in bytes (as sent, before any decompression).",
        ("route",),
    ),
    _d("model_requests_in_flight", "gauge", "Requests currently being proxied."),
    _d(
        "model_upstream_errors_total",
        "counter",
        "Requests the model server could not answer, by reason (refused, connect_error, connect_timeout, timeout, reset, malformed).",
        ("reason",),
    ),
    _d("model_upstream_up", "gauge", "1 if the last readiness probe of the model server succeeded, else 0."),
    _d(
        "model_load_duration_seconds",
        "gauge",
        "Seconds from sidecar start until the model server first answered its readiness probe.",
    ),
    # content (the analysis worker's view of the payloads)
    _d(
        "model_rows_total",
        "counter",
        "Rows (instances) extracted from request payloads; a batched request counts one per instance.",
        family="content",
    ),
    _d(
        "model_prediction_rows_total",
        "counter",
        "Rows of predictions extracted from response payloads.",
        family="content",
    ),
    _d(
        "model_payload_errors_total",
        "counter",
        "Payloads that could not be turned into rows, by reason (a fixed set); the traffic passed unchanged.",
        ("side", "reason"),
        family="content",
    ),
    # LLM serving (analyzers/llm.py; the proxy's streams gauge): README "LLM serving" maps each to OTel GenAI and vLLM
    _d(
        "model_llm_requests_total",
        "counter",
        "LLM requests answered with 2xx and analysed, by route, operation (chat, completion, embeddings, responses, generate) and whether the response was streamed.",
        ("route", "operation", "streamed"),
        family="llm",
    ),
    _d(
        "model_llm_time_to_first_token_seconds",
        "histogram",
        "Streamed LLM responses: time from the first request byte to the arrival of the first event carrying generated content (not the headers, not a role-only chunk), as the sidecar saw it.",
        ("route",),
        family="llm",
    ),
    _d(
        "model_llm_inter_token_latency_seconds",
        "histogram",
        "Streamed LLM responses: the gap between the arrivals of consecutive content events (0 when two arrived in one read).",
        ("route",),
        family="llm",
    ),
    _d(
        "model_llm_time_per_output_token_seconds",
        "histogram",
        "Streamed LLM responses with at least 2 completion tokens: (last byte - first content event) / (completion tokens - 1).",
        ("route",),
        family="llm",
    ),
    _d(
        "model_llm_prefill_ratio",
        "histogram",
        "Streamed LLM responses: the share of the request duration spent before the first token (queueing and prefill): time to first token / request duration.",
        ("route",),
        family="llm",
    ),
    _d(
        "model_llm_request_duration_seconds",
        "histogram",
        "LLM requests answered with 2xx: time from the first request byte to the last response byte.",
        ("route", "streamed"),
        family="llm",
    ),
    _d(
        "model_llm_output_tokens_per_second",
        "histogram",
        "LLM requests with completion tokens: completion tokens / request duration.",
        ("route",),
        family="llm",
    ),
    _d(
        "model_llm_request_tokens",
        "histogram",
        "Tokens per LLM request, by kind (prompt, completion) and source (usage: the server's count; estimated: completion tokens counted as content events).",
        ("route", "kind", "source"),
        family="llm",
    ),
    _d(
        "model_llm_tokens_total",
        "counter",
        "LLM tokens, by route, kind (prompt, completion) and source (usage: the server's count; estimated: completion tokens counted as content events).",
        ("route", "kind", "source"),
        family="llm",
    ),
    _d(
        "model_llm_finish_reasons_total",
        "counter",
        "LLM responses by finish reason (stop, length, content_filter, tool_calls, function_call, other); responses that give none are not counted.",
        ("route", "reason"),
        family="llm",
    ),
    _d(
        "model_llm_errors_total",
        "counter",
        "LLM errors by the type the server named (OpenAI error types, vLLM and TGI ones mapped onto them; other: a type outside the list or none), answered with a non-2xx status or sent as an event in a stream.",
        ("route", "type"),
        family="llm",
    ),
    _d(
        "model_llm_incomplete_streams_total",
        "counter",
        "Streamed LLM responses that ended before their final event (client gone, model server cut, capture limit).",
        ("route",),
        family="llm",
    ),
    _d(
        "model_llm_stream_marks_capped_total",
        "counter",
        "Streamed LLM responses with more reads than the proxy keeps arrival times for (4096): their later events are not timed.",
        ("route",),
        family="llm",
    ),
    _d(
        "model_llm_cost_total",
        "counter",
        "Cost of LLM tokens at the prices per 1M tokens in the config (llm.prices), by kind (prompt, completion) and currency (llm.currency).",
        ("kind", "currency"),
        family="llm",
    ),
    _d(
        "model_llm_streams_in_flight",
        "gauge",
        "LLM-route responses between their head and their last byte (captured exchanges).",
        family="llm",
    ),
    # drift against the baseline (scores computed at scrape time from the window counts)
    _d(
        "model_drift_score",
        "gauge",
        "Drift of the column's live distribution in the window from the baseline; higher means more drift. Exported once the window holds drift.min_rows.",
        ("role", "column", "method", "window"),
        family="drift",
    ),
    _d(
        "model_drift_threshold",
        "gauge",
        "Alarm threshold for model_drift_score: the larger of the configured practical threshold and the no-drift critical value for the window's row count at drift.false_alarm_rate (+Inf for the moments a critical value is being simulated in the background).",
        ("role", "column", "method", "window"),
        family="drift",
    ),
    _d(
        "model_drift_detected",
        "gauge",
        "The default drift decision, 1 when the column drifted in the window (method: the statistic that decides): its Wasserstein distance (numeric, in baseline standard deviations) or chi-square effect size (categorical, Cohen's w) is above both the effect-size floor (0.1; drift.columns.NAME.threshold.wasserstein or .chisquare) and the no-drift critical value for the window's rows at drift.false_alarm_rate. Exported once the window holds drift.min_rows.",
        ("role", "column", "method", "window"),
        family="drift",
    ),
    _d(
        "model_drift_pvalue",
        "gauge",
        "p-value of the drift test where the method has one (chi-square, KS); small means drift.",
        ("role", "column", "method", "window"),
        family="drift",
    ),
    _d("model_window_rows", "gauge", "Rows in the rolling window.", ("window",), family="drift"),
    _d(
        "model_window_late_rows_total",
        "counter",
        "Rows left out of a window because their requests arrived before the window's start by the time they were analysed (a backlog longer than the window, or a wall clock stepped forward).",
        ("window",),
        family="drift",
    ),
    _d(
        "model_column_bin_total",
        "counter",
        "Values per baseline PSI bin (numeric: an interval of the training range, or below / above it; categorical: a category or __other__); aggregate across replicas for fleet drift.",
        ("role", "column", "bin"),
        family="drift",
    ),
    _d(
        "model_column_baseline_ratio",
        "gauge",
        "Share of the baseline's values in each PSI bin (the reference for model_column_bin_total).",
        ("role", "column", "bin"),
        family="drift",
    ),
    _d(
        "model_baseline_skipped_rows_total",
        "counter",
        "Rows (as counted by model_rows_total) left out of drift and quality, with their predictions, because their model or version is not the one the baseline's series are labelled with (the configured one, else the first one seen).",
        family="drift",
    ),
    _d("model_baseline_info", "gauge", "The baseline in force; always 1.", ("sha256", "created"), family="drift"),
    # data quality (counters aggregate across replicas; ratios over the rolling windows)
    _d(
        "model_column_values_total",
        "counter",
        "Values seen per baseline column (one per row, present or not).",
        ("role", "column"),
        family="quality",
    ),
    _d(
        "model_column_missing_total",
        "counter",
        "Missing values: absent key, null, NaN or empty string.",
        ("role", "column"),
        family="quality",
    ),
    _d(
        "model_column_out_of_range_total",
        "counter",
        "Numeric values outside the baseline range (plus quality.range_tolerance) or the configured bounds, by side.",
        ("role", "column", "side"),
        family="quality",
    ),
    _d(
        "model_column_unseen_total",
        "counter",
        "Categorical values not among the baseline's categories (the values themselves are never labels).",
        ("role", "column"),
        family="quality",
    ),
    _d(
        "model_column_type_errors_total",
        "counter",
        "Values of the wrong type: a non-numeric string or a nested value where a number is expected, a non-finite number.",
        ("role", "column"),
        family="quality",
    ),
    _d(
        "model_schema_errors_total",
        "counter",
        "Payloads whose shape differs from the baseline schema, by kind (missing_column, unexpected_column, column_count, datatype).",
        ("kind",),
        family="quality",
    ),
    _d(
        "model_missing_ratio",
        "gauge",
        "Share of missing values in the rolling window.",
        ("role", "column", "window"),
        family="quality",
    ),
    _d(
        "model_out_of_range_ratio",
        "gauge",
        "Share of out-of-range values in the rolling window.",
        ("role", "column", "window"),
        family="quality",
    ),
    # performance from ground-truth labels (POST /feedback) joined to predictions by id
    _d(
        "model_labels_total",
        "counter",
        "Labels received on POST /feedback, by outcome of the join to recent predictions: matched (scored), unknown_id (no prediction with that id in the cache), expired (more than labels.ttl after its prediction), duplicate (the prediction was already labelled), invalid (a malformed record).",
        ("outcome",),
        family="performance",
    ),
    _d(
        "model_label_delay_seconds",
        "histogram",
        "Time from a prediction to its matched label (the label's time, else when it arrived).",
        family="performance",
    ),
    _d(
        "model_labels_cache_entries",
        "gauge",
        "Predictions held for joining labels (labels.cache_size at most).",
        family="performance",
    ),
    _d(
        "model_labels_cache_evictions_total",
        "counter",
        "Predictions forgotten before a label came: full (pushed out by newer ones: raise labels.cache_size), expired (older than twice labels.ttl).",
        ("reason",),
        family="performance",
    ),
    _d("model_window_labels", "gauge", "Scored labels in the rolling window.", ("window",), family="performance"),
    _d(
        "model_performance_score",
        "gauge",
        "Realised performance over the window's labels: accuracy, precision, recall, f1 (binary: of performance.positive; else macro), roc_auc, log_loss, calibration_error (binary, with a score column); mae, rmse, mape (regression). Exported once the window holds performance.min_labels.",
        ("metric", "window"),
        family="performance",
    ),
    _d(
        "model_performance_threshold",
        "gauge",
        "Alarm threshold for model_performance_score: the baseline, worse by the larger of performance.tolerance and the noise at the window's label count (at performance.false_alarm_rate).",
        ("metric", "window"),
        family="performance",
    ),
    _d(
        "model_performance_estimated",
        "gauge",
        "Performance estimated from the scores of every prediction in the window, before labels arrive (confidence-based, as NannyML's CBPE): accuracy, precision, recall, f1 of a binary classifier with a score column. Exported only while the scores are calibrated (performance.max_calibration_error: the baseline's calibration_error, else that of the labels joined so far).",
        ("metric", "window"),
        family="performance",
    ),
    _d(
        "model_performance_baseline",
        "gauge",
        "The model's reference performance from the baseline file's performance section.",
        ("metric",),
        family="performance",
    ),
    _d(
        "model_performance_labels_scored_total",
        "counter",
        "Matched labels that were scored (a usable prediction and label); the denominator of the fleet recording rules.",
        family="performance",
    ),
    _d(
        "model_performance_class_total",
        "counter",
        "One-vs-rest confusion cells per class (tp, fp, fn) of scored labels; classes are the baseline's label categories, else the first performance.max_classes seen, then __other__.",
        ("class", "cell"),
        family="performance",
    ),
    _d(
        "model_performance_absolute_error_total",
        "counter",
        "Sum of absolute errors, abs(prediction − label), of scored labels (regression).",
        family="performance",
    ),
    _d(
        "model_performance_squared_error_total",
        "counter",
        "Sum of squared errors (prediction − label)² of scored labels (regression).",
        family="performance",
    ),
    _d(
        "model_segment_score",
        "gauge",
        "Fairness: per segment (a value of a performance.segments column, capped; __other__, __missing__) and window, the action_rate (share predicted performance.positive), accuracy, false_positive_rate and false_negative_rate of its labels. Once the window holds performance.min_labels.",
        ("column", "segment", "metric", "window"),
        family="performance",
    ),
    _d(
        "model_segment_gap",
        "gauge",
        "Fairness: model_segment_score minus the same figure over all segments of the column in the window (positive: higher than overall).",
        ("column", "segment", "metric", "window"),
        family="performance",
    ),
    _d(
        "model_segment_gap_threshold",
        "gauge",
        "Alarm threshold for the absolute model_segment_gap: the larger of 0.1 and the noise of the rate at the segment's label count behind it (z·sqrt(p(1 − p)/n) at performance.false_alarm_rate).",
        ("column", "segment", "metric", "window"),
        family="performance",
    ),
    _d(
        "model_segment_labels",
        "gauge",
        "Scored labels of the segment in the window (how much its figures can be trusted).",
        ("column", "segment", "window"),
        family="performance",
    ),
    _d(
        "model_outcome_rate",
        "gauge",
        "Business KPI per predicted class over the window's labels: the share whose label is performance.positive (e.g. the conversion rate of approved loans). Classification; once the window holds performance.min_labels.",
        ("predicted", "window"),
        family="performance",
    ),
    _d(
        "model_outcome_value_mean",
        "gauge",
        "Business KPI per predicted class over the window's labels: the mean outcome value sent with them (revenue, cost). Classification; once the window holds performance.min_labels.",
        ("predicted", "window"),
        family="performance",
    ),
    _d(
        "model_outcome_positive_total",
        "counter",
        "Scored labels equal to performance.positive, per predicted class (divide by model_performance_class_total tp + fp of that class for the fleet outcome rate).",
        ("predicted",),
        family="performance",
    ),
    _d(
        "model_outcome_value_total",
        "counter",
        "Sum of the outcome values of scored labels, per predicted class.",
        ("predicted",),
        family="performance",
    ),
    _d(
        "model_outcome_values_total",
        "counter",
        "Scored labels that carried an outcome value, per predicted class.",
        ("predicted",),
        family="performance",
    ),
    _d(
        "model_exporter_labels_dropped_total",
        "counter",
        "Labels of POST /feedback the proxy could not hand to the analysis worker: queue_full (labels.queue_size in flight), worker_down.",
        ("reason",),
        model_level=False,
        family="performance",
    ),
    # push: CloudEvents from the KServe / Seldon request loggers (sidecar/push.py)
    _d(
        "model_exporter_push_events_total",
        "counter",
        "CloudEvents taken on push.path, by CloudEvents type (KServe's org.kubeflow.serving.inference.request and .response, Seldon's io.seldon.serving.inference.request and .response) and content mode (binary, structured).",
        ("type", "mode"),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_push_joined_total",
        "counter",
        "Request and response events joined by their id into one exchange for the analysis worker.",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_push_unmatched_total",
        "counter",
        "Request or response events that found no other half: expired (waited push.ttl) or evicted (push.cache_size or push.cache_bytes reached). An unmatched request is still analysed for its features.",
        ("half", "reason"),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_push_rejected_total",
        "counter",
        "Requests on push.path refused with 4xx, by reason: missing_attribute, unsupported_type, unsupported_specversion, unsupported_content_type, invalid_envelope, too_large (over push.max_body_bytes).",
        ("reason",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_push_duplicates_total",
        "counter",
        "Events whose half (request or response) of the same id was already waiting; the first copy is kept (a logger's retry).",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_push_cache_entries",
        "gauge",
        "Event halves waiting for their other half (at most push.cache_size).",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_push_cache_bytes",
        "gauge",
        "Data bytes of the event halves waiting for their other half (at most push.cache_bytes).",
        model_level=False,
        family="exporter",
    ),
    # batch jobs: `model-exporter batch`, pushed to a Pushgateway or written for the textfile collector
    _d(
        "model_batch_success",
        "gauge",
        "1 if the last run of the batch job read and analysed all its records (whatever it found), 0 if it ended with an error (exit status 2).",
        family="batch",
    ),
    _d(
        "model_batch_last_completion_timestamp_seconds",
        "gauge",
        "Unix time the last run of the batch job ended, successful or not.",
        family="batch",
    ),
    _d(
        "model_batch_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last successful run of the batch job ended (model_batch_success 1).",
        family="batch",
    ),
    _d(
        "model_batch_duration_seconds",
        "gauge",
        "Wall time of the last run of the batch job, reading and analysis.",
        family="batch",
    ),
    _d(
        "model_batch_records",
        "gauge",
        "Records the last successful run of the batch job analysed.",
        family="batch",
    ),
    _d(
        "model_batch_records_per_second",
        "gauge",
        "Records analysed per second of the last successful run of the batch job.",
        family="batch",
    ),
    _d(
        "model_batch_checks_failed",
        "gauge",
        "Columns of the last successful run that failed a check: drift (model_drift_detected), missing (share of missing values over --max-missing), out_of_range (over --max-out-of-range), schema (a baseline column absent from the data). Any above 0: exit status 1.",
        ("check",),
        family="batch",
    ),
    _d(
        "model_exporter_config_last_reload_successful",
        "gauge",
        "1 if the last configuration reload succeeded (or none was attempted), else 0.",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_config_last_reload_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful configuration load.",
        model_level=False,
        family="exporter",
    ),
    # resources of the model server (collected at scrape time)
    _d(
        "model_server_cpu_seconds_total",
        "counter",
        "CPU time (user + system) used by the model server process.",
        family="resources",
    ),
    _d(
        "model_server_resident_memory_bytes",
        "gauge",
        "Resident memory of the model server process.",
        family="resources",
    ),
    _d(
        "model_server_memory_limit_bytes",
        "gauge",
        "Memory limit of the model server's cgroup (absent when unlimited).",
        family="resources",
    ),
    _d("model_server_open_fds", "gauge", "Open file descriptors of the model server process.", family="resources"),
    _d(
        "model_gpu_utilization_ratio",
        "gauge",
        "GPU busy time over the last sample period (NVML), 0 to 1.",
        ("gpu",),
        family="resources",
    ),
    _d("model_gpu_memory_used_bytes", "gauge", "GPU memory in use (NVML).", ("gpu",), family="resources"),
    _d("model_gpu_memory_total_bytes", "gauge", "GPU memory installed (NVML).", ("gpu",), family="resources"),
    _d("model_gpu_temperature_celsius", "gauge", "GPU core temperature (NVML).", ("gpu",), family="resources"),
    _d("model_gpu_power_watts", "gauge", "GPU power draw (NVML).", ("gpu",), family="resources"),
    # exporter self-monitoring
    _d(
        "model_exporter_build_info",
        "gauge",
        "Build information of model-exporter; always 1.",
        ("version",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_events_dropped_total",
        "counter",
        "Exchanges left out of payload analysis (never out of the proxied traffic), by reason.",
        ("reason",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_queue_depth",
        "gauge",
        "Exchanges waiting for the analysis worker.",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_worker_restarts_total",
        "counter",
        "Times the analysis worker exited (or was stopped as stuck) and was started again; its windows start empty.",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_state_restored",
        "gauge",
        "1 if the analysis windows (and, after a clean stop, counters) were restored from a snapshot in state_dir at start, else 0.",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_state_snapshot_timestamp_seconds",
        "gauge",
        "Unix time of the last snapshot of the analysis state written to state_dir.",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_state_snapshot_failures_total",
        "counter",
        "Snapshots of the analysis state that could not be written to state_dir.",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_queue_capacity",
        "gauge",
        "Exchanges the analysis queue holds before it drops (capture.queue_size).",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_label_overflow_total",
        "counter",
        "Exchanges whose model name (label=model) or version (label=version) from the request path became the label value other because model.max_names values were already kept (README: Model and version labels).",
        ("label",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_series_overflow_total",
        "counter",
        "Exchanges whose label set (route, method, code, model, version) would have been new beyond 10,000 in the family: counted under route=other, code=other instead.",
        ("family",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_client_connections",
        "gauge",
        "Client connections open on the proxy port (client.max_connections at most).",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_client_connections_closed_total",
        "counter",
        "Client connections closed, by reason: client_closed, no_keepalive (the request or response said close), keepalive_timeout, header_timeout, body_timeout, send_timeout (the client read none of a response), limit (over client.max_connections: 503), protocol_error (a malformed or refused request), upstream_error (a response cut, or a request body left unread, by a model server failure), shutdown.",
        ("reason",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_lines_total",
        "counter",
        "Whole lines read from the files a tail source follows (tail.sources[].path; over-long lines not included).",
        ("source",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_records_total",
        "counter",
        "Lines read as valid records of the source's shape (predlog, sagemaker, nginx, envoy, labels).",
        ("source", "shape"),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_malformed_lines_total",
        "counter",
        "Lines skipped as not valid records of the source's shape; each is logged with its file:line (the first 10 per source, then one in 1,000).",
        ("source", "shape"),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_long_lines_skipped_total",
        "counter",
        "Lines skipped for being longer than tail.max_line_bytes.",
        ("source",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_truncations_total",
        "counter",
        "Followed files found shorter than the offset read up to (copytruncate rotation) and read again from their start.",
        ("source",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_rotations_total",
        "counter",
        "Followed files that left the source's path (renamed away or deleted): read to their end, then closed.",
        ("source",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_lag_bytes",
        "gauge",
        "Bytes written to the followed files beyond the last whole line read.",
        ("source",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_files",
        "gauge",
        "Files a tail source has open (rotated ones still being drained included; tail.max_files in all).",
        ("source",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_errors_total",
        "counter",
        "Tail failures, by reason: open, read (a followed file), max_files (a matched file left unfollowed: tail.max_files open), offsets (the offsets file could not be written).",
        ("reason",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_tail_paused_total",
        "counter",
        "Tail polls skipped because the analysis queue was over half full (the lag grows instead of lines being dropped).",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_prediction_log_records_total",
        "counter",
        "Exchanges written to the prediction log (prediction_log.path).",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_prediction_log_bytes_total",
        "counter",
        "Bytes written to the prediction log.",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_prediction_log_dropped_total",
        "counter",
        "Sampled exchanges not written to the prediction log, by reason: rate_limit (prediction_log.max_rate), queue_full (the disk is slower than the traffic: prediction_log.queue_size), disk_full (ENOSPC or EDQUOT), write_error (any other error opening, writing or rotating; writes then pause for 5 s, and what comes meanwhile counts here too), unredactable (prediction_log.redact is set and a body is not plain JSON: never written unredacted).",
        ("reason",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_prediction_log_rotations_total",
        "counter",
        "Times the prediction log reached prediction_log.max_bytes and was rotated (at most prediction_log.max_files kept).",
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_collector_success",
        "gauge",
        "1 if the collector produced its metrics at its last reading (the pipeline: the last scrape; resources: at most resources.interval ago), else 0.",
        ("collector",),
        model_level=False,
        family="exporter",
    ),
    _d(
        "model_exporter_collector_duration_seconds",
        "gauge",
        "Seconds the collector's last reading took.",
        ("collector",),
        model_level=False,
        family="exporter",
    ),
)

BY_NAME: dict[str, MetricDef] = {m.name: m for m in METRICS}


def exposed_names(metric: MetricDef) -> tuple[str, ...]:
    """Sample names a family exposes (what PromQL can reference)."""
    if metric.type == "histogram":
        return (f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count")
    return (metric.name,)


# A counter or gauge family: add_metric(labels, value) on either.
ValueFamily = CounterMetricFamily | GaugeMetricFamily


def label_names(metric: MetricDef) -> list[str]:
    """The family's labels in exposition order: its own, then model and version if model-level."""
    return [*metric.labels, *(MODEL_LABELS if metric.model_level else ())]


def family(name: str) -> ValueFamily:
    """An empty counter or gauge family for a defined metric: type, help and labels from this table."""
    m = BY_NAME[name]
    if m.type == "counter":
        return CounterMetricFamily(m.name, m.help, labels=label_names(m))
    if m.type in ("gauge", "info"):
        return GaugeMetricFamily(m.name, m.help, labels=label_names(m))
    raise ValueError(f"{name} is a {m.type}: use histogram_family()")


def histogram_family(name: str) -> HistogramMetricFamily:
    """An empty histogram family for a defined histogram."""
    m = BY_NAME[name]
    if m.type != "histogram":
        raise ValueError(f"{name} is a {m.type}, not a histogram")
    return HistogramMetricFamily(m.name, m.help, labels=label_names(m))
