"""The service's metrics, defined once: Prometheus objects every component records into.

The API serves them at `/metrics`, each worker (and local event source) on its own port (LF_METRICS_PORT); in
Lambda the same objects are flushed as CloudWatch embedded metrics after each invocation. Record with the
objects here only, so a name means one thing everywhere (docs/operations.md lists them).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Job durations run from tens of milliseconds (a tiny-model step) to hours (a training).
_JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200, 14400)

HTTP_REQUESTS = Counter(
    "lorafoundry_http_requests", "API requests by route template, method and status.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "lorafoundry_http_request_duration_seconds",
    "API request latency by route template and method.",
    ["route", "method"],
)
JOBS_SUBMITTED = Counter("lorafoundry_jobs_submitted", "Jobs the API queued, by kind.", ["kind"])
JOBS_CANCELED = Counter("lorafoundry_jobs_cancel_requests", "Cancels asked of the API, by kind.", ["kind"])
JOBS_FINISHED = Counter(
    "lorafoundry_jobs_finished",
    "Jobs a worker finished, by kind and outcome (its terminal status).",
    ["kind", "status"],
)
JOB_DURATION = Histogram(
    "lorafoundry_job_duration_seconds",
    "Time a worker spent on a job, by kind and stage (load, adapter_load, adapter_switch, inputs, compute, upload,"
    " total).",
    ["kind", "stage"],
    buckets=_JOB_BUCKETS,
)
# Set at scrape time by whichever API process answers: across processes (multiprocess mode) the newest value counts.
JOBS_BY_STATUS = Gauge(
    "lorafoundry_jobs",
    "Jobs by kind and status, as the jobs table holds them (queued and running: the sparse queue indexes).",
    ["kind", "status"],
    multiprocess_mode="mostrecent",
)
CONSUMER_LAG = Gauge(
    "lorafoundry_consumer_lag",
    "Records a consumer group has still to read (the deployment's scaling metric), by group and topic.",
    ["group", "topic"],
    multiprocess_mode="mostrecent",
)
ADAPTER_CACHE = Counter(
    "lorafoundry_adapter_cache", "Adapter activations by result: hit (already loaded), miss (loaded now).", ["result"]
)
WEBHOOK_DELIVERIES = Counter("lorafoundry_webhook_deliveries", "Webhook delivery attempts by outcome.", ["outcome"])
QUOTA_REFUSALS = Counter("lorafoundry_quota_refusals", "Requests refused with 429, by the limit they met.", ["limit"])
GPU_MEMORY = Gauge(
    "lorafoundry_gpu_memory_bytes",
    "GPU memory of this process by device and kind (allocated, reserved).",
    ["device", "kind"],
    multiprocess_mode="all",
)
