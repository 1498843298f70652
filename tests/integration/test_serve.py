"""`onecrew-chat serve` in embedded mode, for real: a subprocess, a free port, the printed request pasted over HTTP."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time

import httpx

from onecrew_chat.accounts.demo import AMR_ID, COMPANY_OWNER_ID, SAT_EDUCATION_ID
from tests.integration.test_cli import COMMAND, DEADLINE_S, Running, clean_env

READY_LINE = "Demo users are listed"


def printed_request(stdout: list[str]) -> tuple[str, dict[str, str], dict]:
    """The URL, headers and JSON body of the ready-to-paste curl that serve printed."""
    start = next(i for i, line in enumerate(stdout) if line.strip().startswith("curl "))
    command, i = [], start
    while True:
        line = stdout[i].strip()
        command.append(line.removesuffix("\\"))
        if not line.endswith("\\"):
            break
        i += 1
    args = shlex.split(" ".join(command))
    url = next(a for a in args if a.startswith("http"))
    headers = dict(args[j + 1].split(": ", 1) for j, a in enumerate(args) if a == "-H")
    body = json.loads(args[args.index("-d") + 1])
    return url, headers, body


def base_url(server: Running) -> str:
    """Where serve listens, from its `serve.listening` log line (ONECREW_LOG_FORMAT=json, as these tests run)."""
    if not any('"serve.listening"' in line for _, line in server.seen):
        server.wait_for('"serve.listening"')
    [line] = [line for _, line in server.seen if '"serve.listening"' in line]
    return json.loads(line)["url"]


def printed_dev_token(stdout: list[str], tmp_path) -> str:
    """Run the printed dev-token command the way a developer would: in another terminal, another directory."""
    [command] = [line.strip() for line in stdout if "onecrew-chat dev-token " in line and "<" not in line]
    env = clean_env(tmp_path)
    del env["ONECREW_DATA_DIR"]  # a new terminal: only what the printed command sets
    env["PATH"] = os.path.dirname(COMMAND) + os.pathsep + env.get("PATH", "")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    done = subprocess.run(
        command, shell=True, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=DEADLINE_S
    )
    assert done.returncode == 0, done.stderr
    assert not (elsewhere / "var").exists(), "no second set of dev secrets"
    return done.stdout.strip()


def wait_healthy(client: httpx.Client, url: str) -> None:
    """Poll /healthz until it answers 200, within the deadline (connection refusals count as not yet)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            if client.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url}/healthz did not answer within {DEADLINE_S}s"
        time.sleep(0.02)  # polling interval of a deadline-bounded wait


def start(tmp_path) -> tuple[Running, list[str]]:
    server = Running(tmp_path, "serve", "--port", "0")
    try:
        return server, server.wait_for(READY_LINE)
    except BaseException:
        server.stop(signal.SIGKILL)
        raise


def test_serve_embedded_mode_creates_the_printed_conversation_and_keeps_state_across_restarts(tmp_path):
    server, stdout = start(tmp_path)
    try:
        text = "\n".join(stdout)
        assert "Stream emulator runs in-process at http://127.0.0.1:" in text
        assert "no DATABASE_URL set" in text and "Demo data:" in text
        said = "\n".join(line for _, line in server.seen)  # with ONECREW_LOG_FORMAT=json, a log event
        assert "Mode: development (Stream: embedded emulator)" in said
        url = base_url(server)
        create_url, headers, body = printed_request(stdout)
        assert create_url == f"{url}/api/chat/conversations"
        assert body == {"conversation_type": "user_company", "participant_ids": [SAT_EDUCATION_ID]}

        with httpx.Client(timeout=60) as client:
            wait_healthy(client, url)
            ready = client.get(f"{url}/readyz")
            assert ready.status_code == 200
            assert (ready.json()["data"]["mode"], ready.json()["data"]["stream"]["target"]) == (
                "development",
                "embedded emulator",
            )
            created = client.post(create_url, headers=headers, json=body)
        assert created.status_code == 200, created.text
        data = created.json()["data"]
        assert data["chat"]["status"] == "ready"
        assert {p["participant_id"] for p in data["participants"]} == {AMR_ID, SAT_EDUCATION_ID}

        # The printed dev-token command signs with this server's secret, from any directory.
        owner_token = printed_dev_token(stdout, tmp_path)
        assert COMPANY_OWNER_ID in "\n".join(stdout)
        with httpx.Client(timeout=60) as client:
            as_company = client.post(
                f"{url}/api/chat/token?profile_type=company&company_id={SAT_EDUCATION_ID}",
                headers={"Authorization": f"Bearer {owner_token}"},
            )
        assert as_company.status_code == 200, as_company.text
        assert as_company.json()["data"]["user_id"] == f"onecrew_company_{SAT_EDUCATION_ID}"

        emulator_state = json.loads((tmp_path / "var" / "stream-emulator.json").read_text())
        assert emulator_state["app"]["webhook_url"] == f"{url}/api/chat/webhooks/stream"
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.seen

    # Same data dir: same dev secrets (the new token and the old one both work), our rows and Stream's kept.
    server, stdout = start(tmp_path)
    try:
        assert "Demo data:" not in "\n".join(stdout)
        # Amr is in Stream since the first run's conversation: the printed line no longer says otherwise.
        assert "not yet in Stream" not in "\n".join(stdout) and "Try it: Amr" in "\n".join(stdout)
        url = base_url(server)
        create_url, new_headers, body = printed_request(stdout)
        with httpx.Client(timeout=60) as client:
            wait_healthy(client, url)
            again = client.post(create_url, headers=headers, json=body)
            shown = client.get(f"{url}/api/chat/conversations/{data['id']}", headers=new_headers)
        assert again.status_code == 200, again.text
        assert again.json()["data"]["id"] == data["id"]
        assert again.json()["data"]["chat"]["status"] == "ready"
        assert shown.status_code == 200, shown.text
    finally:
        code = server.stop(signal.SIGINT)
    assert code == 0, server.seen


def test_serve_keeps_idle_keep_alive_connections_longer_than_a_load_balancer(sqlite_only_url, emulator_server):
    """uvicorn's 5 s default closed a connection just as a busy client (or a balancer) reused it: no answer."""
    from onecrew_chat.cli.serve import uvicorn_config
    from tests.conftest import make_settings

    config = uvicorn_config(make_settings(sqlite_only_url, emulator_server.base_url))
    assert config.timeout_keep_alive > 60
