"""Faults over the admin HTTP path and from command-line flags; the standalone command."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
import typer
from stream_chat.base.exceptions import StreamAPIException

from stream_emulator import create_app
from stream_emulator import operations as op
from stream_emulator.cli import fault_spec


def test_admin_path_sets_faults_reads_state_and_resets(base_url, sc, emu):
    sc.upsert_user({"id": "ann"})
    response = httpx.post(
        f"{base_url}/_emulator/faults",
        json={
            "error_rates": {op.UPDATE_USERS: {"rate": 1.0, "status": 502}},
            "rate_limit_bursts": {op.GET_APP: {"count": 1, "reset_in_s": 5}},
            "timeout_after_write": {op.DELETE_CHANNEL: {"count": 2, "hold_s": 3}},
            "latency_ms": 1,
            "jitter_ms": 1,
            "visibility_delay_ms": 250,
        },
    )
    assert response.status_code == 200 and len(response.json()["active"]) == 5
    with pytest.raises(StreamAPIException) as failed:
        sc.upsert_user({"id": "bob"})
    assert failed.value.status_code == 502
    with pytest.raises(StreamAPIException) as limited:
        sc.get_app_settings()
    assert limited.value.status_code == 429
    state = httpx.get(f"{base_url}/_emulator/state").json()
    assert state["users"] == 1 and state["faults"]["visibility_delay_ms"] == 250
    log = httpx.get(f"{base_url}/_emulator/requests").json()["requests"]
    assert [r["status"] for r in log] == [201, 502, 429]
    assert all(0 < r["at"] - r["duration_ms"] / 1000 <= r["at"] <= time.time() for r in log)  # when each came, answered
    assert httpx.post(f"{base_url}/_emulator/faults", json={"reset": True}).status_code == 200
    assert emu.faults.describe() == []
    assert httpx.post(f"{base_url}/_emulator/reset").json() == {"reset": True}
    assert emu.user_ids() == set() and emu.count() == 0


def test_admin_path_switches_rate_limits(base_url, emu):
    assert httpx.post(f"{base_url}/_emulator/rate_limits", json={"enabled": True}).json() == {"rate_limits": True}
    assert emu.rate_limiter.enabled
    assert httpx.post(f"{base_url}/_emulator/rate_limits", json={"enabled": False}).json() == {"rate_limits": False}
    assert httpx.post(f"{base_url}/_emulator/rate_limits", json={}).status_code == 400


async def test_admin_path_is_off_unless_enabled():
    app = create_app(api_key="k", api_secret="s")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as client:
        response = await client.post("/_emulator/reset")
    assert response.status_code == 401 and response.json()["code"] == 2


def test_fault_flags_parse_into_the_admin_spec():
    spec = fault_spec(10, 5, ["UpdateUsers=0.25:503", "*=0.1"], ["GetOrCreateChannel=3:7.5"], ["UpdateChannel=2"], 400)
    assert spec["error_rates"] == {"UpdateUsers": {"rate": 0.25, "status": 503}, "*": {"rate": 0.1, "status": 500}}
    assert spec["rate_limit_bursts"] == {"GetOrCreateChannel": {"count": 3, "reset_in_s": 7.5}}
    assert spec["timeout_after_write"] == {"UpdateChannel": {"count": 2, "hold_s": 30.0}}
    assert spec["visibility_delay_ms"] == 400 and spec["latency_ms"] == 10
    with pytest.raises(typer.BadParameter):
        fault_spec(0, 0, ["no-equals-sign"], [], [], 0)
    assert fault_spec(0, 0, [], [], [], 0, "2:500")["webhook_failures"] == {"count": 2, "status": 500}
    assert fault_spec(0, 0, [], [], [], 0, "1")["webhook_failures"] == {"count": 1, "status": 503}
    with pytest.raises(typer.BadParameter):
        fault_spec(0, 0, [], [], [], 0, "many")


def test_python_dash_m_serves_and_prints_its_faults(tmp_path):
    state_file = tmp_path / "state.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream_emulator",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--api-secret",
            "cli-secret",
            "--error-rate",
            "QueryUsers=1:503",
            "--visibility-delay-ms",
            "5",
            "--state-file",
            str(state_file),
            "--enable-admin",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        deadline = time.monotonic() + 20
        while not any(line.startswith("fault: new users") for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, lines
            lines.append(process.stdout.readline().strip())
        url = lines[0].rsplit(" ", 1)[1]
        assert lines[1] == "api key: cli-key"
        assert "fault: error rate QueryUsers: 1 answered with HTTP 503" in lines
        assert any(line.startswith("rate limits: enforced") for line in lines)
        state = httpx.get(f"{url}/_emulator/state").json()
        assert state["users"] == 0 and state["rate_limits"] is True
    finally:
        process.terminate()
        process.wait(timeout=10)
