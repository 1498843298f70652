"""The real `onecrew-chat` commands, each run in a subprocess with a clean environment and a temp data dir."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from onecrew_chat.config import to_async_url
from onecrew_chat.db import make_sessionmaker, upgrade_database, utcnow
from onecrew_chat.models import OutboxMessage
from tests.support import JWT_SECRET, SERVICE_TOKEN, STREAM_KEY, STREAM_SECRET, new_id

COMMAND = str(Path(sys.executable).with_name("onecrew-chat"))
DEADLINE_S = 60  # a failure bound only: a loaded machine starts a process in seconds


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The parent environment without any onecrew-chat setting, a temp data dir, plus `values`."""
    prefixes = ("ONECREW_", "STREAM_", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(ONECREW_DATA_DIR=str(tmp_path / "var"), ONECREW_LOG_FORMAT="json")
    env.update(values)
    return env


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `onecrew-chat ARGS` to completion in tmp_path."""
    return subprocess.run(
        [COMMAND, *args],
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )


class Running:
    """A started `onecrew-chat` process whose stdout and stderr lines are read as they come."""

    def __init__(self, tmp_path: Path, *args: str, **env: str):
        self.proc = subprocess.Popen(
            [COMMAND, *args],
            cwd=tmp_path,
            env=clean_env(tmp_path, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        self.closed = 0
        for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()

    def _pump(self, name: str, stream) -> None:
        for line in stream:
            self.lines.put((name, line.rstrip("\n")))
        self.lines.put((name, None))

    def wait_for(self, text: str, *, timeout: float = DEADLINE_S) -> list[str]:
        """Block until a line containing `text` arrives (or fail at the deadline); returns stdout so far."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                name, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} within {timeout}s; got {self.seen}") from None
            if line is None:
                self.closed += 1
                if self.closed == 2:
                    raise AssertionError(f"process ended (code {self.proc.wait()}) before {text!r}; got {self.seen}")
                continue
            self.seen.append((name, line))
            if text in line:
                return self.stdout()

    def stdout(self) -> list[str]:
        """The stdout lines read so far."""
        return [line for name, line in self.seen if name == "stdout"]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` and wait for the exit code (kill at the deadline)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


# Stream for commands that never call it: a closed loopback port.
NO_STREAM_URL = "http://127.0.0.1:9"


def stream_env(emulator_server=None) -> dict[str, str]:
    """Every production setting but DATABASE_URL (production needs them all): the emulator as Stream, test secrets."""
    return {
        "STREAM_API_KEY": STREAM_KEY,
        "STREAM_API_SECRET": STREAM_SECRET,
        "STREAM_BASE_URL": emulator_server.base_url if emulator_server else NO_STREAM_URL,
        "ONECREW_JWT_SECRET": JWT_SECRET,
        "ONECREW_SERVICE_TOKEN": SERVICE_TOKEN,
    }


def production_env(database_url: str, emulator_server=None) -> dict[str, str]:
    """Every production setting, with this database."""
    return {"DATABASE_URL": database_url, **stream_env(emulator_server)}


def test_dev_token_in_embedded_mode_uses_the_one_secret_serve_keeps_readable_by_the_owner_only(tmp_path):
    from onecrew_chat.cli import embedded
    from onecrew_chat.config import Settings

    user_id = new_id()
    # `serve` makes the secret (dev-token alone refuses to: tests/integration/test_local_instances.py).
    embedded.with_dev_jwt_secret(Settings(data_dir=tmp_path / "var", _env_file=None))
    first = run(tmp_path, "dev-token", user_id.upper(), "--ttl", "120")
    second = run(tmp_path, "dev-token", user_id)
    assert first.returncode == 0, first.stderr
    secrets_file = tmp_path / "var" / "dev-secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    secret = json.loads(secrets_file.read_text())["jwt_secret"]
    claims = jwt.decode(first.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == user_id and claims["exp"] - claims["iat"] == 120
    assert jwt.decode(second.stdout.strip(), secret, algorithms=["HS256"])["sub"] == user_id
    assert secret not in first.stdout + first.stderr + second.stderr


def test_dev_token_uses_the_configured_secret_and_rejects_bad_ids(tmp_path):
    user_id = new_id()
    done = run(tmp_path, "dev-token", user_id, ONECREW_JWT_SECRET=JWT_SECRET, ONECREW_MODE="development")
    assert jwt.decode(done.stdout.strip(), JWT_SECRET, algorithms=["HS256"])["sub"] == user_id
    assert not (tmp_path / "var" / "dev-secrets.json").exists()

    bad = run(tmp_path, "dev-token", "amr")
    assert bad.returncode == 2
    assert "USER_ID must be a uuid, got 'amr'" in bad.stderr

    # Production with only a public key: nothing to sign with (the OneCrew backend issues the tokens).
    public_key = "-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEAs7r16Bk9VolwDJkZoNnIg9ydGj3qRHDJ7c4QsehMae8=\\n-----END PUBLIC KEY-----"
    env = production_env(f"sqlite:///{tmp_path}/x.sqlite3") | {"ONECREW_JWT_SECRET": ""}
    no_secret = run(
        tmp_path, "dev-token", user_id, **env, ONECREW_JWT_PUBLIC_KEY=public_key, ONECREW_JWT_ALGORITHMS="EdDSA"
    )
    assert no_secret.returncode == 1 and "no ONECREW_JWT_SECRET to sign with" in no_secret.stderr


def only_line(done: subprocess.CompletedProcess) -> str:
    """The one line a refused command printed on stderr (and nothing on stdout, no traceback)."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and not done.stdout and "Traceback" not in done.stderr, done.stderr + done.stdout
    return lines[0]


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"], ["status"], ["outbox", "list"]])
def test_a_production_setting_without_its_partners_refuses_to_start_in_one_line(tmp_path, command):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    # The case: the production database and no Stream key, where the emulator used to stand in.
    database_only = run(tmp_path, *command, DATABASE_URL=url)
    assert database_only.returncode == 2
    assert only_line(database_only) == (
        "error: production settings are incomplete: missing STREAM_API_KEY, STREAM_API_SECRET, ONECREW_JWT_SECRET "
        "(or ONECREW_JWT_PUBLIC_KEY), ONECREW_SERVICE_TOKEN (given: DATABASE_URL); set them, or set "
        "ONECREW_MODE=development to run with the development fallbacks (SQLite file, Stream emulator, demo data)"
    )
    # The reverse: every Stream and JWT setting, DATABASE_URL empty, where SQLite and demo users used to stand in.
    no_database = run(tmp_path, *command, **production_env(""))
    assert no_database.returncode == 2
    assert only_line(no_database).startswith("error: production settings are incomplete: missing DATABASE_URL (")
    no_secret = run(tmp_path, *command, **production_env(url) | {"STREAM_API_SECRET": ""})
    assert "missing STREAM_API_SECRET (" in only_line(no_secret)
    assert not (tmp_path / "var").exists()  # refused before a file, an emulator or a dev secret was made


def test_settings_that_cannot_work_are_one_line_naming_them(tmp_path):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    for env, line in [
        (
            {"STREAM_BASE_URL": "not a url"},
            "error: STREAM_BASE_URL: must be an http:// or https:// URL, got 'not a url'",
        ),
        (
            {"ONECREW_JWT_ALGORITHMS": "HS256,RS256"},
            "error: ONECREW_JWT_ALGORITHMS: names RS256 but ONECREW_JWT_PUBLIC_KEY",
        ),
        ({"ONECREW_JWT_SECRET": "s"}, "error: ONECREW_JWT_SECRET: is 1 bytes; HS256 needs at least 32"),
        (
            {"ONECREW_SERVICE_TOKEN": "t" * 31},
            "error: ONECREW_SERVICE_TOKEN: is 31 characters; production needs at least 32",
        ),
    ]:
        done = run(tmp_path, "serve", "--port", "0", **production_env(url) | env)
        assert done.returncode == 2 and only_line(done).startswith(line), done.stderr
    # A misspelt name is warned about (not refused); here it is also why a setting is missing.
    env = production_env(url) | {"ONECREW_SERVICE_TOKEN": "", "ONECREW_SERVICE_TOKN": SERVICE_TOKEN}
    misspelt = run(tmp_path, "serve", "--port", "0", **env)
    assert misspelt.stderr.splitlines() == [
        "onecrew-chat: warning: ONECREW_SERVICE_TOKN is not a onecrew-chat setting and is ignored; "
        "did you mean ONECREW_SERVICE_TOKEN?",
        misspelt.stderr.splitlines()[1],
    ]
    assert "missing ONECREW_SERVICE_TOKEN (" in misspelt.stderr.splitlines()[1]
    assert SERVICE_TOKEN not in misspelt.stderr
    # So is a STREAM_* name close to one of ours.
    env = production_env(url) | {"STREAM_API_SECRET": "", "STREAM_API_SECERT": STREAM_SECRET}
    misspelt = run(tmp_path, "serve", "--port", "0", **env)
    assert misspelt.stderr.splitlines()[0] == (
        "onecrew-chat: warning: STREAM_API_SECERT is not a onecrew-chat setting and is ignored; "
        "did you mean STREAM_API_SECRET?"
    )
    assert "missing STREAM_API_SECRET (" in misspelt.stderr.splitlines()[1]
    assert STREAM_SECRET not in misspelt.stderr


def test_status_says_which_mode_and_which_stream(tmp_path, emulator, emulator_server):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgrade_database(url)
    production = json.loads(run(tmp_path, "status", "--json", **production_env(url, emulator_server)).stdout)
    assert production["mode"] == "production"
    assert production["stream"]["target"] == emulator_server.base_url.rstrip("/")
    table = run(tmp_path, "status", **production_env(url, emulator_server)).stdout
    assert "mode" in table and "production" in table
    # Development: the emulator lives inside `serve`; this process says so rather than "Stream not configured".
    development = json.loads(run(tmp_path, "status", "--json").stdout)
    assert development["mode"] == "development"
    assert development["stream"]["target"].startswith("embedded emulator")
    assert not [problem for problem in development["problems"] if "Stream" in problem]


def test_serve_refuses_a_database_it_cannot_use(tmp_path):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    unmigrated = run(tmp_path, "serve", "--port", "0", **production_env(url))
    assert unmigrated.returncode == 1
    assert "the database has no schema yet" in unmigrated.stderr
    assert "run `onecrew-chat db upgrade` first" in unmigrated.stderr

    upgrade_database(url, "0001")
    outdated = run(tmp_path, "serve", "--port", "0", **production_env(url))
    assert outdated.returncode == 1
    assert "the database is at migration 0001 but this version needs" in outdated.stderr
    assert "onecrew-chat db upgrade" in outdated.stderr
    assert not (tmp_path / "var").exists()  # refused before starting an emulator or writing dev secrets


def test_db_upgrade_migrates_database_url_and_the_embedded_file(tmp_path):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgraded = run(tmp_path, "db", "upgrade", **production_env(url))
    assert upgraded.returncode == 0, upgraded.stderr
    assert "(head)" in upgraded.stdout

    embedded = run(tmp_path, "db", "upgrade")
    assert embedded.returncode == 0, embedded.stderr
    assert (tmp_path / "var" / "onecrew-chat.sqlite3").exists()

    bad = run(tmp_path, "db", "upgrade", **production_env("postgresql://nobody:hunter2@127.0.0.1:1/none"))
    assert bad.returncode == 1
    assert "cannot migrate postgresql://nobody:***@127.0.0.1:1/none" in bad.stderr
    assert "hunter2" not in bad.stderr + bad.stdout


async def _outbox_rows(url: str, add: list[OutboxMessage] | None = None) -> list[OutboxMessage]:
    engine = create_async_engine(to_async_url(url))
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            session.add_all(add or [])
            await session.flush()
            return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())
    finally:
        await engine.dispose()


def test_outbox_list_and_retry(tmp_path):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgrade_database(url)
    later = utcnow()
    rows = asyncio.run(
        _outbox_rows(
            url,
            [
                OutboxMessage(
                    kind="identity.sync",
                    payload={"stream_id": "onecrew_user_x"},
                    status="dead",
                    attempts=9,
                    last_error="StreamRequestError: nope",
                    next_attempt_at=later,
                ),
                OutboxMessage(
                    kind="conversation.provision",
                    payload={"conversation_id": "c1"},
                    status="dead",
                    attempts=9,
                    next_attempt_at=later,
                ),
                OutboxMessage(
                    kind="conversation.provision",
                    payload={"conversation_id": "c2"},
                    status="pending",
                    attempts=2,
                    next_attempt_at=later,
                ),
                OutboxMessage(
                    kind="conversation.provision",
                    payload={"conversation_id": "c3"},
                    status="done",
                    next_attempt_at=later,
                ),
                OutboxMessage(
                    kind="conversation.provision",
                    payload={"conversation_id": "c4"},
                    status="pending",
                    attempts=1,
                    next_attempt_at=later,
                    lease_token="w",
                    locked_until=later + timedelta(hours=1),
                ),
            ],
        )
    )
    dead_sync, dead_provision, pending, done, running = (r.id for r in rows)

    listed = run(tmp_path, "outbox", "list", **production_env(url))
    assert listed.returncode == 0, listed.stderr
    assert "2 pending, 2 dead" in listed.stdout and "pending (running)" in listed.stdout
    assert "StreamRequestError: nope" in listed.stdout and "c3" not in listed.stdout

    one = run(tmp_path, "outbox", "retry", str(dead_sync), **production_env(url))
    assert one.returncode == 0 and "Requeued 1 outbox message." in one.stdout
    assert run(tmp_path, "outbox", "retry", str(done), **production_env(url)).returncode == 1
    missing = run(tmp_path, "outbox", "retry", "999999", **production_env(url))
    assert missing.returncode == 1 and "no outbox message with id 999999" in missing.stderr
    assert run(tmp_path, "outbox", "retry", **production_env(url)).returncode == 2
    busy = run(tmp_path, "outbox", "retry", str(running), **production_env(url))
    assert busy.returncode == 1 and f"outbox message {running} is being run by a worker right now" in busy.stderr

    rest = run(tmp_path, "outbox", "retry", "--all-dead", **production_env(url))
    assert "Requeued 1 outbox message." in rest.stdout
    after = {r.id: (r.status, r.attempts) for r in asyncio.run(_outbox_rows(url))}
    assert after == {
        dead_sync: ("pending", 0),
        dead_provision: ("pending", 0),
        pending: ("pending", 2),
        done: ("done", 0),
        running: ("pending", 1),
    }


def test_stream_configure_derives_the_webhook_url_and_refuses_a_bad_one(tmp_path, emulator, emulator_server):
    some_db = f"sqlite:///{tmp_path}/unused.sqlite3"  # production needs it; this command does not open it
    derived = run(
        tmp_path,
        "stream",
        "configure",
        ONECREW_PUBLIC_BASE_URL="https://api.example.org/",
        **production_env(some_db, emulator_server),
    )
    assert derived.returncode == 0, derived.stderr
    with emulator.lock:
        targets = [hook.get("webhook_url") for hook in emulator.state.app.get("event_hooks") or []]
    assert "https://api.example.org/api/chat/webhooks/stream" in targets

    bad = run(tmp_path, "stream", "configure", "--webhook-url", "ftp://x", **production_env(some_db, emulator_server))
    assert bad.returncode == 2 and "must start with http:// or https://" in bad.stderr
    assert run(tmp_path, "stream", "configure", **production_env(some_db, emulator_server)).returncode == 2
    unconfigured = run(tmp_path, "stream", "configure", "--webhook-url", "https://chat.example.com/x")
    assert unconfigured.returncode == 1 and "set STREAM_API_KEY and STREAM_API_SECRET" in unconfigured.stderr


def test_worker_runs_the_outbox_until_sigterm(tmp_path, emulator, emulator_server):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgrade_database(url)
    worker = Running(
        tmp_path,
        "worker",
        DATABASE_URL=url,
        ONECREW_WORKER_POLL_S="0.05",
        ONECREW_WORKER_METRICS_PORT="0",
        **stream_env(emulator_server),
    )
    try:
        worker.wait_for("worker.started")
    finally:
        code = worker.stop(signal.SIGTERM)
    assert code == 0, worker.seen
    worker.wait_for("worker.stopped")

    refused = run(tmp_path, "worker", DATABASE_URL=url)
    assert refused.returncode == 2 and "STREAM_API_KEY" in refused.stderr


def test_stream_emulator_command_is_mounted(tmp_path):
    shown = run(tmp_path, "stream-emulator", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--port" in shown.stdout


@pytest.mark.parametrize("args", [["--help"], []])
def test_help_lists_the_commands(tmp_path, args):
    shown = run(tmp_path, *args)
    for command in ("serve", "dev-token", "db", "worker", "stream", "outbox", "stream-emulator"):
        assert command in shown.stdout + shown.stderr
