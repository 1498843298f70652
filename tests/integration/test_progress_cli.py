"""`sync identities` and `reconcile`: a progress bar with total and ETA on a terminal's stderr, clean output when
piped, and `--json` for scripts."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess

from onecrew_chat.db import upgrade_database
from onecrew_chat.runtime import build_runtime
from tests.conftest import make_settings
from tests.integration.test_backfill import directory
from tests.integration.test_cli import COMMAND, DEADLINE_S, clean_env, run, stream_env

BAR_SIGNS = ("ETA", "━", "\x1b[")


def arranged(tmp_path, emulator_server, users: int = 7, companies: int = 3) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgrade_database(url)

    async def arrange() -> None:
        rt = build_runtime(make_settings(url, emulator_server.base_url))
        try:
            await directory(rt, users, companies)
        finally:
            await rt.close()

    asyncio.run(arrange())
    return {"DATABASE_URL": url, **stream_env(emulator_server)}


def run_on_a_terminal(tmp_path, *args: str, **env: str) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (stdout piped): (exit code, stdout, what the terminal showed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [COMMAND, *args],
        cwd=tmp_path,
        env={**clean_env(tmp_path, **env), "TERM": "xterm", "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process is done writing
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    out = proc.stdout.read()
    return proc.wait(timeout=DEADLINE_S), out, shown.decode("utf-8", "replace")


def test_sync_identities_json_is_clean_and_complete(tmp_path, emulator, emulator_server):
    env = arranged(tmp_path, emulator_server)
    done = run(tmp_path, "sync", "identities", "--json", "--batch", "4", **env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # nothing but the JSON on stdout
    assert (report["scanned"], report["upserted"], report["sent"], report["stream_calls"]) == (10, 10, 10, 3)
    assert not any(sign in done.stderr for sign in BAR_SIGNS)  # piped: no bar


def test_reconcile_json_is_clean_and_complete(tmp_path, emulator, emulator_server):
    env = arranged(tmp_path, emulator_server)
    assert run(tmp_path, "sync", "identities", **env).returncode == 0
    done = run(tmp_path, "reconcile", "--json", **env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["identities_checked"] == 10 and report["total_drift"] == 0 and report["repair"] is False
    assert set(report["drift"]) == {"identity_missing", "profile_stale", "channel_missing", "member_missing"}
    assert not any(sign in done.stderr for sign in BAR_SIGNS)


def test_a_terminal_sees_bars_with_totals_and_eta(tmp_path, emulator, emulator_server):
    env = arranged(tmp_path, emulator_server)
    code, out, shown = run_on_a_terminal(tmp_path, "sync", "identities", "--batch", "4", **env)
    assert code == 0, shown
    assert "10/10" in shown and "ETA" in shown and "Syncing" in shown
    assert "Upserted 10" in out and "ETA" not in out  # the summary stays on stdout, the bar on stderr

    code, out, shown = run_on_a_terminal(tmp_path, "reconcile", **env)
    assert code == 0, shown
    assert "Reconciling" in shown and "10/10" in shown and "ETA" in shown
    assert "No drift" in out
