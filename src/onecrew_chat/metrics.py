"""Prometheus metrics: every Stream call, retry, repair, deferral and dead letter is counted.

Counters and histograms count what this process did. The gauges marked "(database)" are read from the database
when /metrics is scraped (onecrew_chat.observability.collector), so every process, API or worker, reports the
same true values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from onecrew_chat import version

# onecrew_build_info{version="0.2.0"} 1: which version each scraped process runs (during a rolling upgrade, both).
BUILD_INFO = Info("onecrew_build", "The version this process runs (pyproject's version)")
BUILD_INFO.info({"version": version()})

HTTP_REQUEST_SECONDS = Histogram(
    "onecrew_http_request_seconds",
    "Server time per request",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STREAM_CALLS = Counter("onecrew_stream_calls_total", "Calls made to Stream", ["operation", "outcome"])
STREAM_RETRIES = Counter("onecrew_stream_retries_total", "Retries of a Stream call, by reason", ["operation", "reason"])
STREAM_REPAIRS = Counter("onecrew_stream_repairs_total", "Identities re-upserted after Stream said they don't exist")
STREAM_RATE_LIMIT_REMAINING = Gauge(
    "onecrew_stream_rate_limit_remaining", "x-ratelimit-remaining of the last Stream answer", ["operation"]
)
STREAM_RATE_LIMIT_LIMIT = Gauge(
    "onecrew_stream_rate_limit_limit", "x-ratelimit-limit of the last Stream answer (calls per window)", ["operation"]
)
STREAM_RATE_LIMIT_RESET = Gauge(
    "onecrew_stream_rate_limit_reset_timestamp_seconds",
    "x-ratelimit-reset of the last Stream answer (Unix time the window restarts)",
    ["operation"],
)
STREAM_AUTH_FAILURES = Counter(
    "onecrew_stream_auth_failures_total",
    "Stream answers of 401/403: STREAM_API_KEY/STREAM_API_SECRET (or the app's permissions) refused",
    ["operation"],
)
IDENTITIES_UPSERTED = Counter("onecrew_identities_upserted_total", "Identities upserted to Stream", ["kind"])
CONVERSATIONS_CREATED = Counter("onecrew_conversations_created_total", "Conversations created", ["conversation_type"])
PROVISIONING_DEFERRED = Counter(
    "onecrew_provisioning_deferred_total", "Creates answered with chat_status=provisioning (left to the worker)"
)
OUTBOX_PROCESSED = Counter("onecrew_outbox_processed_total", "Outbox messages handled", ["kind", "outcome"])
OUTBOX_DEAD = Counter("onecrew_outbox_dead_total", "Outbox messages given up on (dead letters)", ["kind"])
OUTBOX_REVIVED = Counter(
    "onecrew_outbox_revived_total",
    "Dead letters made due again because their failure was a passing one and Stream answers again",
    ["kind"],
)
OUTBOX_PENDING = Gauge("onecrew_outbox_pending", "Outbox messages waiting (database)")
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "onecrew_outbox_oldest_pending_age_seconds", "Age of the oldest waiting outbox message, 0 when none (database)"
)
OUTBOX_DEAD_LETTERS = Gauge(
    "onecrew_outbox_dead_letters", "Outbox messages given up on, waiting for `onecrew-chat outbox retry` (database)"
)
RECONCILE_LAST_RUN = Gauge(
    "onecrew_reconcile_last_run_timestamp_seconds", "Unix time the last reconcile run finished, 0 if never (database)"
)
RECONCILE_DRIFT = Gauge("onecrew_reconcile_drift", "Drift the last reconcile run found, by kind (database)", ["kind"])
CHANNEL_DRIFT_OPEN = Gauge(
    "onecrew_channel_drift_open", "Drift reported by Stream webhooks and not yet resolved, by kind (database)", ["kind"]
)
WORKERS_SEEN = Gauge("onecrew_workers_seen", "Workers whose heartbeat is recent (database)")
DATABASE_METRICS_UP = Gauge(
    "onecrew_database_metrics_up", "1 when the last scrape-time read of the database gauges succeeded, else 0"
)
READY = Gauge("onecrew_ready", "1 when the last /readyz probe of this dependency answered, else 0", ["check"])
WEBHOOK_EVENTS = Counter("onecrew_webhook_events_total", "Stream webhook events", ["type", "outcome"])
DRIFT_DETECTED = Counter("onecrew_drift_detected_total", "Differences between our records and Stream", ["kind"])
IDEMPOTENT_REPLAYS = Counter("onecrew_idempotent_replays_total", "Answers replayed for a repeated Idempotency-Key")

# --- outbox worker and readiness ---
WORKER_PAUSED = Gauge(
    "onecrew_worker_paused", "1 while this process's outbox worker is paused (Stream refuses our credentials)"
)
OUTBOX_LEASE_LOST = Counter(
    "onecrew_outbox_lease_lost_total", "Runs whose lease was taken over before their outcome was recorded", ["kind"]
)
CONFIG_INFO = Gauge(
    "onecrew_config_info",
    "Always 1: the mode this process runs in (development, production) and the Stream it talks to (base URL or "
    "'embedded emulator'; never a secret)",
    ["mode", "stream"],
)
STREAM_UP = Gauge("onecrew_stream_up", "1 when the last (cached, at most once a minute) Stream health check answered")
RETENTION_PURGED = Counter("onecrew_retention_purged_total", "Rows deleted by the retention purges", ["table"])
