"""One version, from pyproject.toml through the installed metadata, shown by every surface an operator reads."""

from __future__ import annotations

import json
import signal
import tomllib
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_cli import Running, run
from tests.integration.test_serve import base_url

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_installed_version_is_pyprojects():
    from onecrew_chat import __version__, version

    assert version() == __version__ == VERSION


def test_version_flag_prints_the_version_and_exits_0(tmp_path):
    done = run(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"onecrew-chat {VERSION}"


def test_serve_logs_its_version_first_and_shows_it_in_healthz_and_metrics(tmp_path):
    server = Running(tmp_path, "serve", "--port", "0")
    try:
        server.wait_for("serving on")
        url = base_url(server)
        with httpx.Client(timeout=10) as client:
            health = client.get(f"{url}/healthz").json()
            metrics = client.get(f"{url}/metrics").text
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.seen
    first_log = json.loads(next(line for name, line in server.seen if name == "stderr"))
    assert first_log["event"] == "serve.starting" and first_log["version"] == VERSION
    assert health["data"]["version"] == VERSION
    build = [s for f in text_string_to_metric_families(metrics) for s in f.samples if s.name == "onecrew_build_info"]
    assert [(s.labels, s.value) for s in build] == [({"version": VERSION}, 1.0)]


def test_serve_with_json_logs_writes_json_lines_only(tmp_path, emulator_server):
    from onecrew_chat.db import upgrade_database
    from tests.integration.test_cli import stream_env

    url = f"sqlite:///{tmp_path / 'prod.sqlite3'}"
    upgrade_database(url)
    server = Running(tmp_path, "serve", "--port", "0", DATABASE_URL=url, **stream_env(emulator_server))
    try:
        server.wait_for('"serve.listening"')
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.seen
    lines = [line for _, line in server.seen if line.strip()]
    events = [json.loads(line)["event"] for line in lines]  # fails on the first plain line, stdout or stderr
    assert events[0] == "serve.starting" and "serve.listening" in events
    [listening] = [json.loads(line) for line in lines if '"serve.listening"' in line]
    assert listening["message"].startswith(f"onecrew-chat is serving on {listening['url']}")


def test_help_shows_no_type_beside_a_flag(tmp_path):
    for args in (["--help"], ["db", "downgrade", "--help"], ["status", "--help"], ["serve", "--help"]):
        shown = run(tmp_path, *args)
        assert shown.returncode == 0, shown.stderr
        assert "<bool>" not in shown.stdout, args
    assert "<str>" in run(tmp_path, "serve", "--help").stdout  # options that take a value still say which
