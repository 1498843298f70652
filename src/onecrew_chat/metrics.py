"""Prometheus metrics: every Stream call, retry, repair, deferral and dead letter is counted."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUEST_SECONDS = Histogram(
    "onecrew_http_request_seconds", "Server time per request", ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STREAM_CALLS = Counter("onecrew_stream_calls_total", "Calls made to Stream", ["operation", "outcome"])
STREAM_RETRIES = Counter("onecrew_stream_retries_total", "Retries of a Stream call, by reason", ["operation", "reason"])
STREAM_REPAIRS = Counter("onecrew_stream_repairs_total", "Identities re-upserted after Stream said they don't exist")
STREAM_RATE_LIMIT_REMAINING = Gauge(
    "onecrew_stream_rate_limit_remaining", "x-ratelimit-remaining of the last Stream answer", ["operation"]
)
IDENTITIES_UPSERTED = Counter("onecrew_identities_upserted_total", "Identities upserted to Stream", ["kind"])
CONVERSATIONS_CREATED = Counter("onecrew_conversations_created_total", "Conversations created", ["conversation_type"])
PROVISIONING_DEFERRED = Counter(
    "onecrew_provisioning_deferred_total", "Creates answered with chat_status=provisioning (left to the worker)"
)
OUTBOX_PROCESSED = Counter("onecrew_outbox_processed_total", "Outbox messages handled", ["kind", "outcome"])
OUTBOX_DEAD = Counter("onecrew_outbox_dead_total", "Outbox messages given up on (dead letters)", ["kind"])
OUTBOX_PENDING = Gauge("onecrew_outbox_pending", "Outbox messages waiting")
WEBHOOK_EVENTS = Counter("onecrew_webhook_events_total", "Stream webhook events", ["type", "outcome"])
DRIFT_DETECTED = Counter("onecrew_drift_detected_total", "Differences between our records and Stream", ["kind"])
IDEMPOTENT_REPLAYS = Counter("onecrew_idempotent_replays_total", "Answers replayed for a repeated Idempotency-Key")

# --- outbox worker and readiness (issue 7) ---
WORKER_PAUSED = Gauge("onecrew_worker_paused", "1 while this process's outbox worker is paused (Stream refuses our credentials)")
OUTBOX_LEASE_LOST = Counter("onecrew_outbox_lease_lost_total", "Runs whose lease was taken over before their outcome was recorded", ["kind"])
STREAM_UP = Gauge("onecrew_stream_up", "1 when the last (cached, at most once a minute) Stream health check answered")
RETENTION_PURGED = Counter("onecrew_retention_purged_total", "Rows deleted by the retention purges", ["table"])
