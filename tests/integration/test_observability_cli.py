"""The real commands: `status`, `worker`'s metrics port and heartbeat, the start-up check of `serve` and `worker`."""

from __future__ import annotations

import json
import signal
import socket
import time

import httpx

from onecrew_chat import version
from onecrew_chat.db import upgrade_database
from tests.api.test_health import closed_port_url
from tests.integration.test_cli import Running, production_env, run, stream_env
from tests.support import STREAM_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def migrated(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgrade_database(url)
    return url


def scrape_until(url: str, line: str, *, timeout: float = 30.0) -> httpx.Response:
    """GET `url` until its body has `line` (scrapes are cached 5 s), failing at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, timeout=5)
        if line in response.text:
            return response
        if time.monotonic() > deadline:
            raise AssertionError(f"no {line!r} in {url} within {timeout} s:\n{response.text}")
        time.sleep(0.1)  # the polling interval of a deadline-bounded wait


def test_worker_serves_metrics_and_healthz_and_is_seen_by_status(tmp_path, emulator, emulator_server):
    url = migrated(tmp_path)
    port = free_port()
    worker = Running(
        tmp_path, "worker", DATABASE_URL=url, ONECREW_WORKER_METRICS_PORT=str(port), **stream_env(emulator_server)
    )
    try:
        worker.wait_for("worker.started")
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["data"]["role"] == "worker"
        assert health.json()["data"]["version"] == version()
        first_log = json.loads(next(line for name, line in worker.seen if name == "stderr"))
        assert (first_log["event"], first_log["version"]) == ("worker.starting", version())
        # Its own heartbeat, read back from the database (the first beat may land just after "worker.started").
        metrics = scrape_until(f"http://127.0.0.1:{port}/metrics", "onecrew_workers_seen 1.0")
        assert "onecrew_outbox_pending 0.0" in metrics.text

        shown = run(tmp_path, "status", "--json", DATABASE_URL=url, **stream_env(emulator_server))
        report = json.loads(shown.stdout)
        assert report["workers_recent"] == 1 and report["workers"][0]["worker_id"] == health.json()["data"]["worker_id"]
        assert report["stream"]["credentials"] == "ok" and report["database"]["migrated"] is True
        assert report["version"] == version()
        assert shown.returncode == 0, report["problems"]

        table = run(tmp_path, "status", DATABASE_URL=url, **stream_env(emulator_server))
        assert table.returncode == 0, table.stdout + table.stderr
        for part in ("database", "migrations", "stream", "outbox", "dead letters", "last reconcile", "workers"):
            assert part in table.stdout
        assert "All well" in table.stdout and f"{version()} (this command)" in table.stdout
    finally:
        code = worker.stop(signal.SIGTERM)
    assert code == 0, worker.seen
    gone = json.loads(run(tmp_path, "status", "--json", DATABASE_URL=url, **stream_env(emulator_server)).stdout)
    assert gone["workers"] == []  # a clean stop deletes its heartbeat


def test_status_exits_1_and_says_what_to_do(tmp_path, emulator_server):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgrade_database(url, "0001")
    shown = run(tmp_path, "status", DATABASE_URL=url, **stream_env(emulator_server))
    assert shown.returncode == 1
    assert "Needs attention:" in shown.stdout
    assert "this version needs" in shown.stdout and "onecrew-chat db upgrade" in shown.stdout

    down = run(
        tmp_path,
        "status",
        "--json",
        **{
            **production_env(url),
            "STREAM_API_KEY": STREAM_KEY,
            "STREAM_API_SECRET": "y" * 40,
            "STREAM_BASE_URL": closed_port_url(),
        },
    )
    report = json.loads(down.stdout)
    assert down.returncode == 1 and report["ok"] is False and report["stream"]["reachable"] is False
    assert "y" * 40 not in down.stdout + down.stderr


def test_serve_and_worker_refuse_a_secret_stream_rejects(tmp_path, emulator, emulator_server):
    url = migrated(tmp_path)
    wrong = {**stream_env(emulator_server), "STREAM_API_SECRET": "z" * 40}
    for args in (["serve", "--port", "0"], ["worker"]):
        refused = run(tmp_path, *args, DATABASE_URL=url, **wrong)
        assert refused.returncode == 1, refused.stderr
        lines = [line for line in refused.stderr.splitlines() if line.startswith("onecrew-chat:")]
        assert len(lines) == 1  # one line, no traceback
        refusal = "onecrew-chat: refusing to start: Stream rejected STREAM_API_KEY/STREAM_API_SECRET (401 "
        assert lines[0].startswith(refusal)
        assert lines[0].endswith("; check them or set ONECREW_STREAM_STARTUP_CHECK=false")
        assert "z" * 40 not in refused.stderr + refused.stdout


def test_an_unreachable_stream_warns_and_starts(tmp_path):
    url = migrated(tmp_path)
    worker = Running(
        tmp_path,
        "worker",
        **{
            **production_env(url),
            "ONECREW_WORKER_METRICS_PORT": "0",
            "STREAM_API_KEY": STREAM_KEY,
            "STREAM_API_SECRET": "y" * 40,
            "STREAM_BASE_URL": closed_port_url(),
        },
    )
    try:
        worker.wait_for("is not reachable")
        worker.wait_for("worker.started")
    finally:
        assert worker.stop(signal.SIGTERM) == 0


def test_the_startup_check_can_be_skipped(tmp_path, emulator, emulator_server):
    url = migrated(tmp_path)
    worker = Running(
        tmp_path,
        "worker",
        DATABASE_URL=url,
        ONECREW_WORKER_METRICS_PORT="0",
        ONECREW_STREAM_STARTUP_CHECK="false",
        **{**stream_env(emulator_server), "STREAM_API_SECRET": "z" * 40},
    )
    try:
        worker.wait_for("worker.started")
    finally:
        assert worker.stop(signal.SIGTERM) == 0
    assert emulator.count("GetApp") == 0
