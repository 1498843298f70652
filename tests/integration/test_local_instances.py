"""Local instances stay apart: the data-folder lock, PORT and the port-clash advice, dev-token from elsewhere, db status."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from onecrew_chat.cli.local_instance import bind_listening_socket
from onecrew_chat.db import upgrade_database
from tests.integration.test_cli import Running, production_env, run
from tests.integration.test_serve import READY_LINE, base_url
from tests.support import new_id


def test_second_instance_on_the_same_folder_is_refused_and_port_env_is_honoured(tmp_path):
    server = Running(tmp_path, "serve", "--port", "0", ONECREW_LOG_FORMAT="JSON")  # any case means JSON
    try:
        server.wait_for(READY_LINE)
        port = int(base_url(server).rsplit(":", 1)[1])
        same_folder = run(tmp_path, "serve", "--port", "0")
        assert same_folder.returncode == 1
        [line] = same_folder.stderr.strip().splitlines()
        assert f"another onecrew-chat serve (pid {server.proc.pid}) is using the data folder" in line
        assert "ONECREW_DATA_DIR=var2 make run PORT=8001" in line

        # Its own folder, but PORT (the environment, no --port) names the first one's port: one line says what to do.
        other = tmp_path / "other"
        other.mkdir()
        # The port after it is taken too (as another program's may be on a busy machine: CI once had it so).
        with contextlib.ExitStack() as held:
            with contextlib.suppress(OSError):  # already someone else's: taken all the same
                held.enter_context(bind_listening_socket("127.0.0.1", port + 1)).listen()
            clash = run(other, "serve", PORT=str(port))
        assert clash.returncode == 1
        [line] = clash.stderr.strip().splitlines()
        assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in line
        # The advice names a port after both that was free when checked, the same in all three ways to give it.
        suggested = re.search(r"make run PORT=(\d+)", line)
        assert suggested, line
        other_port = int(suggested.group(1))
        assert port + 1 < other_port <= port + 21 or other_port == 0, line
        assert f"onecrew-chat serve --port {other_port}" in line and f"or PORT={other_port} " in line
        assert not (other / "var").exists(), "refused before writing anything"
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.seen
    logged = [line for name, line in server.seen if name == "stderr" and line.strip()]
    assert logged and all(json.loads(line)["event"] for line in logged), "JSON logs are JSON lines only"
    # The first instance's emulator state is untouched by the refused ones.
    assert (tmp_path / "var" / "stream-emulator.json").exists()


def test_dev_token_does_not_make_a_secret_nobody_uses(tmp_path):
    elsewhere = run(tmp_path, "dev-token", new_id())
    assert elsewhere.returncode == 1
    [line] = elsewhere.stderr.strip().splitlines()
    assert f"no dev secret in {tmp_path / 'var' / 'dev-secrets.json'}" in line
    assert "ONECREW_DATA_DIR" in line
    assert not (tmp_path / "var").exists()


def _stamp(path: Path, revision: str) -> None:
    """The database as a newer version's contract migration leaves it: only code at `revision` runs on it."""
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        db.execute("UPDATE schema_compatibility SET oldest_code_head = ?", (revision,))


def test_db_current_history_and_a_database_from_a_newer_version(tmp_path):
    path = tmp_path / "prod.sqlite3"
    url = f"sqlite:///{path}"
    empty = run(tmp_path, "db", "current", **production_env(url))
    assert empty.returncode == 1 and "has no schema yet" in empty.stdout

    upgrade_database(url, "0001")
    behind = run(tmp_path, "db", "current", **production_env(url))
    assert behind.returncode == 1
    assert (
        "at migration 0001 but this version needs" in behind.stdout and "run `onecrew-chat db upgrade`" in behind.stdout
    )
    history = run(tmp_path, "db", "history", **production_env(url))
    assert history.returncode == 0, history.stderr
    lines = history.stdout.strip().splitlines()
    assert re.match(r"0001  initial schema  <- current$", lines[0])
    assert all(line.endswith("(not applied)") for line in lines[1:]) and len(lines) >= 3
    assert any(line.startswith("0004  ") for line in lines), "every shipped migration is listed"

    upgrade_database(url)
    head = run(tmp_path, "db", "current", **production_env(url))
    assert head.returncode == 0 and "(head): nothing to do" in head.stdout
    assert run(tmp_path, "db", "history", **production_env(url)).stdout.strip().endswith("<- current (head)")

    _stamp(path, "0099")
    newer = run(tmp_path, "db", "current", **production_env(url))
    assert newer.returncode == 1
    assert "at migration 0099, which this version of onecrew-chat does not know" in newer.stdout
    assert "run `onecrew-chat db upgrade`" not in newer.stdout
    upgrade = run(tmp_path, "db", "upgrade", **production_env(url))
    assert upgrade.returncode == 1 and "a newer version migrated it" in upgrade.stderr
    assert len(upgrade.stderr.strip().splitlines()) == 1
    serve = run(tmp_path, "serve", "--port", "0", **production_env(url))
    assert serve.returncode == 1 and "does not know" in serve.stderr and "db upgrade` first" not in serve.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_passes_port_and_host():
    root = Path(__file__).resolve().parents[2]
    dry = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed-runtime", "run", "PORT=8080", "HOST=0.0.0.0"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ".venv/bin/onecrew-chat serve --port 8080 --host 0.0.0.0" in dry.stdout
    usage = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed-runtime", "dev-token"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert usage.returncode != 0 and "usage: make dev-token USER=<user uuid>" in usage.stderr


def test_embedded_file_from_a_newer_version_is_refused_in_words(tmp_path):
    (tmp_path / "var").mkdir()
    path = tmp_path / "var" / "onecrew-chat.sqlite3"
    upgrade_database(f"sqlite:///{path}")
    _stamp(path, "0099")
    refused = run(tmp_path, "serve", "--port", "0")
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert "at migration 0099, which this version of onecrew-chat does not know" in line


def test_a_port_clash_suggests_a_port_that_is_free():
    from onecrew_chat.cli.local_instance import InstanceRefused, bind_listening_socket, free_port_after, listen_socket

    taken = []
    try:
        first = bind_listening_socket("127.0.0.1", 0)
        taken.append(first)
        port = first.getsockname()[1]
        for next_port in (port + 1, port + 2):  # the two ports after it are taken too (when they can be)
            try:
                taken.append(bind_listening_socket("127.0.0.1", next_port))
            except OSError:
                pass
        for sock in taken:
            sock.listen()
        suggested = free_port_after("127.0.0.1", port)
        assert suggested not in {s.getsockname()[1] for s in taken}
        with pytest.raises(InstanceRefused, match=f"make run PORT={suggested}`"):
            listen_socket("127.0.0.1", port)
        bind_listening_socket("127.0.0.1", suggested).close()  # it really is free
    finally:
        for sock in taken:
            sock.close()
