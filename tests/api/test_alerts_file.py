"""deploy/prometheus/alerts.yml: well-formed rules, and every metric (and label) they name is in /metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_health import client_for
from tests.conftest import make_settings

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_OWN = {"up"}  # written by Prometheus itself, not by the service
DURATION = re.compile(r"^\d+[smhd]$")
SELECTOR = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\{([^}]*)\}")
LABEL = re.compile(r"([a-z_][a-z0-9_]*)\s*(?:=~|!~|!=|=)")
NAME = re.compile(r"\bonecrew_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_count", "_sum", "_bucket", "_created"),
    "summary": ("_count", "_sum"),
}


def rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and list(document) == ["groups"]
    found = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["name"] and group["rules"]
        found.extend(group["rules"])
    return found


@pytest.fixture
async def exposition(sqlite_only_url, emulator, emulator_server) -> dict[str, set[str]]:
    """{series name as PromQL sees it: its label names} from the app's real /metrics."""
    async with client_for(make_settings(sqlite_only_url, emulator_server.base_url)) as http:
        assert (await http.get("/readyz")).status_code == 200  # fills the per-operation and per-check series
        text = (await http.get("/metrics")).text
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        names = [family.name] + [family.name + suffix for suffix in SUFFIXES.get(family.type, ())]
        for name in names:
            series.setdefault(name, set()).update(labels)
    # A labelled metric without samples yet shows no labels: take them from the registry's definition.
    from onecrew_chat import metrics

    for value in vars(metrics).values():
        name, labelnames = getattr(value, "_name", None), getattr(value, "_labelnames", ())
        if name:
            for key in [k for k in series if k == name or k.startswith(name + "_")]:
                series[key].update(labelnames)
    return series


def test_every_rule_is_well_formed():
    seen = set()
    for rule in rules():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Onecrew[A-Z][A-Za-z0-9]+", rule["alert"]) and rule["alert"] not in seen
        seen.add(rule["alert"])
        assert DURATION.match(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    # The conditions an operator must act on are all covered.
    for needed in (
        "onecrew_outbox_oldest_pending_age_seconds",
        "onecrew_outbox_dead_letters",
        "onecrew_stream_auth_failures_total",
        "onecrew_workers_seen",
        "onecrew_reconcile_drift",
        "onecrew_reconcile_last_run_timestamp_seconds",
        "onecrew_http_request_seconds_count",
        "onecrew_ready",
    ):
        assert any(needed in rule["expr"] for rule in rules()), needed


def test_every_metric_and_label_named_exists_in_the_exposition(exposition):
    for rule in rules():
        expr = rule["expr"]
        for name in NAME.findall(expr):
            assert name in exposition, f"{rule['alert']}: {name} is not exposed"
        for name, matchers in SELECTOR.findall(expr):
            if name in PROMETHEUS_OWN:
                continue
            for label in LABEL.findall(matchers):
                assert label in exposition[name], f"{rule['alert']}: {name} has no label {label}"
        for by in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for label in (part.strip() for part in by.split(",")):
                named = [n for n in NAME.findall(expr) if label in exposition[n]]
                assert label == "instance" or named, f"{rule['alert']}: no metric of it has label {label}"
