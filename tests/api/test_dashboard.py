"""deploy/grafana/onecrew-chat.json: a Grafana dashboard whose every query names metrics and labels /metrics has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.api.test_alerts_file import LABEL, NAME, SELECTOR, exposition  # noqa: F401 (the fixture)

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "onecrew-chat.json"
PROMETHEUS_OWN_LABELS = {"instance", "job", "le"}


def _panels() -> list[dict]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert document["title"] == "onecrew-chat" and document["uid"]
    return [panel for panel in document["panels"] if panel["type"] != "row"]


def _queries() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in _panels() for target in panel["targets"]]


def test_every_legend_names_a_label_its_query_keeps():
    for panel in _panels():
        for target in panel["targets"]:
            for label in re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]):
                kept = re.findall(r"\bby\s*\(([^)]*)\)", target["expr"])
                assert any(label in (part.strip() for part in by.split(",")) for by in kept), (panel["title"], label)


def test_the_dashboard_is_well_formed_and_covers_what_an_operator_watches():
    panels = _panels()
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24 and position["h"] > 0, panel["title"]
    shown = " ".join(expr for _, expr in _queries())
    for needed in (
        "onecrew_build_info",
        "onecrew_http_request_seconds_bucket",
        "onecrew_outbox_oldest_pending_age_seconds",
        "onecrew_outbox_dead_letters",
        "onecrew_stream_calls_total",
        "onecrew_stream_rate_limit_remaining",
        "onecrew_reconcile_drift",
        "onecrew_workers_seen",
    ):
        assert needed in shown, needed


def test_every_metric_and_label_a_query_names_is_exported(exposition):  # noqa: F811
    for title, expr in _queries():
        assert expr.count("(") == expr.count(")"), (title, expr)
        names = NAME.findall(expr)
        assert names, (title, expr)
        for name in names:
            assert name in exposition, f"{title}: {name} is not exposed"
        for name, matchers in SELECTOR.findall(expr):
            for label in LABEL.findall(matchers):
                assert label in exposition[name], f"{title}: {name} has no label {label}"
        for by in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for label in (part.strip() for part in by.split(",")):
                assert label in PROMETHEUS_OWN_LABELS or any(label in exposition[n] for n in names), (title, label)
