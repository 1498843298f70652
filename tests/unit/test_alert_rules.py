"""deploy/prometheus/alerts.yml evaluated against synthetic series, as `promtool test rules` would: each rule fires in
the situation it is for and stays quiet in the healthy one next to it. tests/promql.py is the evaluator (the PromQL
subset the rules use); tests/api/test_alerts_file.py checks that every metric they name is exported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.promql import Series, compile_expr, firing, sampled

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
NOW = 1_800_000_000.0
START = NOW - 6 * 3600
SCRAPE_S = 15.0
API = {"instance": "api-1:8000", "job": "onecrew-chat"}
WORKER = {"instance": "worker-1:9101", "job": "onecrew-chat-worker"}


def _rules() -> dict[str, dict]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}


def _for_s(rule: dict) -> float:
    text = rule["for"]
    return float(text[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]


def gauge(name: str, value: float | Callable[[float], float | None], **labels: str) -> Series:
    """A gauge scraped every 15 s for the last 6 hours; `value` may depend on the time."""
    of_time = value if callable(value) else (lambda _t: value)
    return sampled(name, labels, of_time, START, NOW, SCRAPE_S)


def counter(name: str, per_s: float, *, since: float = START, **labels: str) -> Series:
    """A counter rising `per_s` a second, exported from `since` (a process started then)."""
    return sampled(name, labels, lambda t: per_s * (t - since) if t >= since else None, START, NOW, SCRAPE_S)


def ago(seconds: float) -> float:
    return NOW - seconds


@dataclass(frozen=True)
class Case:
    alert: str
    situation: str
    series: Callable[[], list[Series]]
    fires: bool


def _outbox(pending: float, processed_per_s: float | None, *, processed_since: float = START) -> list[Series]:
    series = [gauge("onecrew_outbox_pending", pending, **API), gauge("onecrew_outbox_pending", pending, **WORKER)]
    if processed_per_s is not None:
        series.append(
            counter(
                "onecrew_outbox_processed_total",
                processed_per_s,
                since=processed_since,
                kind="conversation.provision",
                outcome="done",
                **WORKER,
            )
        )
    return series


def _rate_limit(*, remaining: float, limit: float) -> list[Series]:
    labels = {"operation": "QueryChannels", **API}
    return [
        gauge("onecrew_stream_rate_limit_remaining", remaining, **labels),
        gauge("onecrew_stream_rate_limit_limit", limit, **labels),
    ]


def _one_in_twenty_answers(status: str) -> list[Series]:
    """POST /x at 20 requests a second: 19 answer 200, one answers `status`."""
    labels = {"method": "POST", "route": "/x", **API}
    return [
        counter("onecrew_http_request_seconds_count", 19.0, status="200", **labels),
        counter("onecrew_http_request_seconds_count", 1.0, status=status, **labels),
    ]


CASES = [
    Case(
        "OnecrewOutboxBacklogOld",
        "oldest row 10 min old",
        lambda: [gauge("onecrew_outbox_oldest_pending_age_seconds", 600, **API)],
        True,
    ),
    Case(
        "OnecrewOutboxBacklogOld",
        "oldest row 1 min old",
        lambda: [gauge("onecrew_outbox_oldest_pending_age_seconds", 60, **API)],
        False,
    ),
    Case(
        "OnecrewOutboxBacklogCritical",
        "oldest row an hour old",
        lambda: [gauge("onecrew_outbox_oldest_pending_age_seconds", 3600, **API)],
        True,
    ),
    Case(
        "OnecrewOutboxBacklogCritical",
        "oldest row 10 min old",
        lambda: [gauge("onecrew_outbox_oldest_pending_age_seconds", 600, **API)],
        False,
    ),
    Case("OnecrewDeadLetters", "two dead letters", lambda: [gauge("onecrew_outbox_dead_letters", 2, **API)], True),
    Case("OnecrewDeadLetters", "none", lambda: [gauge("onecrew_outbox_dead_letters", 0, **API)], False),
    Case(
        "OnecrewStreamAuthFailures",
        "401s in the last minutes",
        lambda: [counter("onecrew_stream_auth_failures_total", 0.5, since=ago(600), operation="GetApp", **WORKER)],
        True,
    ),
    Case(
        "OnecrewStreamAuthFailures",
        "401s long ago only",
        lambda: [
            gauge(
                "onecrew_stream_auth_failures_total",
                lambda t: 3.0 if t > ago(3 * 3600) else 0.0,
                operation="GetApp",
                **WORKER,
            )
        ],
        False,
    ),
    Case("OnecrewWorkerPaused", "paused", lambda: [gauge("onecrew_worker_paused", 1, **WORKER)], True),
    Case("OnecrewWorkerPaused", "running", lambda: [gauge("onecrew_worker_paused", 0, **WORKER)], False),
    Case("OnecrewStreamDown", "no answer for an hour", lambda: [gauge("onecrew_stream_up", 0, **API)], True),
    Case("OnecrewStreamDown", "answers", lambda: [gauge("onecrew_stream_up", 1, **API)], False),
    Case("OnecrewNoWorker", "no heartbeat", lambda: [gauge("onecrew_workers_seen", 0, **API)], True),
    Case("OnecrewNoWorker", "one worker", lambda: [gauge("onecrew_workers_seen", 1, **API)], False),
    # The case that never fired: a worker that has processed nothing since it started exports no processed series.
    Case("OnecrewOutboxNotDraining", "rows wait, the worker never processed any", lambda: _outbox(5, None), True),
    Case("OnecrewOutboxNotDraining", "rows wait, the counter stands still", lambda: _outbox(5, 0.0), True),
    Case(
        "OnecrewOutboxNotDraining",
        "a worker restarted 20 min ago and has processed nothing since",
        lambda: _outbox(5, 0.0, processed_since=ago(1200)),
        True,
    ),
    Case("OnecrewOutboxNotDraining", "rows wait and are processed", lambda: _outbox(5, 0.2), False),
    Case("OnecrewOutboxNotDraining", "nothing waits, nothing processed", lambda: _outbox(0, None), False),
    Case(
        "OnecrewStreamDriftPersists",
        "member drift in every run for 4 h",
        lambda: [gauge("onecrew_reconcile_drift", 3, kind="member_missing", **API)],
        True,
    ),
    Case(
        "OnecrewStreamDriftPersists",
        "drift repaired an hour ago",
        lambda: [
            gauge("onecrew_reconcile_drift", lambda t: 3.0 if t < ago(3600) else 0.0, kind="member_missing", **API)
        ],
        False,
    ),
    Case(
        "OnecrewWebhookDriftOpen",
        "open for 4 h",
        lambda: [gauge("onecrew_channel_drift_open", 1, kind="member_missing", **API)],
        True,
    ),
    Case(
        "OnecrewWebhookDriftOpen",
        "opened an hour ago",
        lambda: [
            gauge("onecrew_channel_drift_open", lambda t: 1.0 if t > ago(3600) else 0.0, kind="member_missing", **API)
        ],
        False,
    ),
    Case(
        "OnecrewReconcileStale",
        "last run 6 h ago",
        lambda: [gauge("onecrew_reconcile_last_run_timestamp_seconds", START - 60, **API)],
        True,
    ),
    Case(
        "OnecrewReconcileStale",
        "runs every hour",
        lambda: [gauge("onecrew_reconcile_last_run_timestamp_seconds", lambda t: t - (t % 3600), **API)],
        False,
    ),
    Case(
        "OnecrewHttp5xxRate",
        "5% of requests answer 503",
        lambda: _one_in_twenty_answers("503"),
        True,
    ),
    Case(
        "OnecrewHttp5xxRate",
        "4xx only",
        lambda: _one_in_twenty_answers("404"),
        False,
    ),
    Case(
        "OnecrewWorkerNotReady", "the loop fails", lambda: [gauge("onecrew_ready", 0, check="worker", **WORKER)], True
    ),
    Case("OnecrewWorkerNotReady", "ready", lambda: [gauge("onecrew_ready", 1, check="worker", **WORKER)], False),
    Case("OnecrewNotReady", "the database", lambda: [gauge("onecrew_ready", 0, check="database", **API)], True),
    Case(
        "OnecrewNotReady",
        "a worker's loop (its own alert says so)",
        lambda: [
            gauge("onecrew_ready", 0, check="worker", **WORKER),
            gauge("onecrew_ready", 1, check="database", **API),
        ],
        False,
    ),
    Case("OnecrewDatabaseUnreadable", "unreadable", lambda: [gauge("onecrew_database_metrics_up", 0, **API)], True),
    Case("OnecrewDatabaseUnreadable", "readable", lambda: [gauge("onecrew_database_metrics_up", 1, **API)], False),
    Case(
        "OnecrewStreamRateLimitLow",
        "5% left",
        lambda: _rate_limit(remaining=50, limit=1000),
        True,
    ),
    Case(
        "OnecrewStreamRateLimitLow",
        "half left",
        lambda: _rate_limit(remaining=500, limit=1000),
        False,
    ),
    Case(
        "OnecrewStreamUnavailable",
        "half the calls fail",
        lambda: [
            counter("onecrew_stream_calls_total", 1.0, operation="GetApp", outcome="ok", **API),
            counter("onecrew_stream_calls_total", 1.0, operation="GetApp", outcome="unavailable", **API),
        ],
        True,
    ),
    Case(
        "OnecrewStreamUnavailable",
        "all answer",
        lambda: [counter("onecrew_stream_calls_total", 1.0, operation="GetApp", outcome="ok", **API)],
        False,
    ),
    Case("OnecrewTargetDown", "the worker is down", lambda: [gauge("up", 0, **WORKER)], True),
    Case("OnecrewTargetDown", "another job's target", lambda: [gauge("up", 0, instance="x:1", job="node")], False),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.alert}: {case.situation}")
def test_each_rule_fires_in_its_situation_and_not_in_the_healthy_one(case: Case):
    rule = _rules()[case.alert]
    fired = firing(rule["expr"], _for_s(rule), case.series(), NOW)
    assert bool(fired) is case.fires, f"{case.alert} ({case.situation}): {fired}"


def test_every_rule_has_a_firing_and_a_quiet_case():
    for alert in _rules():
        outcomes = {case.fires for case in CASES if case.alert == alert}
        assert outcomes == {True, False}, f"{alert} needs a case where it fires and one where it does not"


def test_a_rule_that_just_became_true_is_pending_not_firing():
    rule = _rules()["OnecrewWorkerNotReady"]
    series = [gauge("onecrew_ready", lambda t: 0.0 if t > ago(60) else 1.0, check="worker", **WORKER)]
    assert firing(rule["expr"], _for_s(rule), series, NOW) == {}
    assert firing(rule["expr"], 0.0, series, NOW), "true now, only not for long enough"


def test_every_rule_expression_parses():
    for alert, rule in _rules().items():
        compile_expr(rule["expr"])  # raises on anything the evaluator cannot evaluate faithfully
        assert alert
