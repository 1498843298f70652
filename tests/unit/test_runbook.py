"""docs/operations.md has a runbook entry (what it means, what to do) for every alert in deploy/prometheus/alerts.yml."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_alert_has_a_runbook_entry():
    alerts = [
        rule["alert"]
        for group in yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    doc = (ROOT / "docs" / "operations.md").read_text()
    runbook = doc[doc.index("## Runbook: one entry per alert") :]
    entries = dict(re.findall(r"^#### (Onecrew\w+)\n(.+?)(?=^#### |\Z)", runbook, re.M | re.S))
    for alert in alerts:
        assert alert in entries, f"no runbook entry for {alert}"
        assert len(entries[alert].split()) >= 20, f"{alert}: say what it means and what to do"
