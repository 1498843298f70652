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
from tests.support import JWT_SECRET, STREAM_KEY, STREAM_SECRET, new_id

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


def stream_env(emulator_server) -> dict[str, str]:
    return {
        "STREAM_API_KEY": STREAM_KEY,
        "STREAM_API_SECRET": STREAM_SECRET,
        "STREAM_BASE_URL": emulator_server.base_url,
    }


def test_dev_token_in_embedded_mode_uses_the_one_secret_serve_keeps_readable_by_the_owner_only(tmp_path):
    from onecrew_chat import embedded
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
    done = run(tmp_path, "dev-token", user_id, ONECREW_JWT_SECRET=JWT_SECRET)
    assert jwt.decode(done.stdout.strip(), JWT_SECRET, algorithms=["HS256"])["sub"] == user_id
    assert not (tmp_path / "var" / "dev-secrets.json").exists()

    bad = run(tmp_path, "dev-token", "amr")
    assert bad.returncode == 2
    assert "USER_ID must be a uuid, got 'amr'" in bad.stderr

    no_secret = run(tmp_path, "dev-token", user_id, DATABASE_URL=f"sqlite:///{tmp_path}/x.sqlite3")
    assert no_secret.returncode == 1 and "no ONECREW_JWT_SECRET is set" in no_secret.stderr


def test_serve_refuses_what_cannot_work_outside_embedded_mode(tmp_path):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    no_jwt = run(tmp_path, "serve", "--port", "0", DATABASE_URL=url)
    assert no_jwt.returncode == 1
    assert (
        "refusing to start: DATABASE_URL is set but neither ONECREW_JWT_SECRET nor ONECREW_JWT_PUBLIC_KEY"
        in no_jwt.stderr
    )

    no_secret = run(
        tmp_path, "serve", "--port", "0", DATABASE_URL=url, ONECREW_JWT_SECRET=JWT_SECRET, STREAM_API_KEY="k"
    )
    assert no_secret.returncode == 1
    assert "STREAM_API_KEY is set but STREAM_API_SECRET is not" in no_secret.stderr

    unmigrated = run(tmp_path, "serve", "--port", "0", DATABASE_URL=url, ONECREW_JWT_SECRET=JWT_SECRET)
    assert unmigrated.returncode == 1
    assert "the database has no schema yet" in unmigrated.stderr
    assert "run `onecrew-chat db upgrade` first" in unmigrated.stderr

    upgrade_database(url, "0001")
    outdated = run(tmp_path, "serve", "--port", "0", DATABASE_URL=url, ONECREW_JWT_SECRET=JWT_SECRET)
    assert outdated.returncode == 1
    assert "the database is at migration 0001 but this version needs" in outdated.stderr
    assert "onecrew-chat db upgrade" in outdated.stderr
    assert not (tmp_path / "var").exists()  # refused before starting an emulator or writing dev secrets


def test_db_upgrade_migrates_database_url_and_the_embedded_file(tmp_path):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgraded = run(tmp_path, "db", "upgrade", DATABASE_URL=url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "(head)" in upgraded.stdout

    embedded = run(tmp_path, "db", "upgrade")
    assert embedded.returncode == 0, embedded.stderr
    assert (tmp_path / "var" / "onecrew-chat.sqlite3").exists()

    bad = run(tmp_path, "db", "upgrade", DATABASE_URL="postgresql://nobody:hunter2@127.0.0.1:1/none")
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

    listed = run(tmp_path, "outbox", "list", DATABASE_URL=url)
    assert listed.returncode == 0, listed.stderr
    assert "2 pending, 2 dead" in listed.stdout and "pending (running)" in listed.stdout
    assert "StreamRequestError: nope" in listed.stdout and "c3" not in listed.stdout

    one = run(tmp_path, "outbox", "retry", str(dead_sync), DATABASE_URL=url)
    assert one.returncode == 0 and "Requeued 1 outbox message." in one.stdout
    assert run(tmp_path, "outbox", "retry", str(done), DATABASE_URL=url).returncode == 1
    missing = run(tmp_path, "outbox", "retry", "999999", DATABASE_URL=url)
    assert missing.returncode == 1 and "no outbox message with id 999999" in missing.stderr
    assert run(tmp_path, "outbox", "retry", DATABASE_URL=url).returncode == 2
    busy = run(tmp_path, "outbox", "retry", str(running), DATABASE_URL=url)
    assert busy.returncode == 1 and f"outbox message {running} is being run by a worker right now" in busy.stderr

    rest = run(tmp_path, "outbox", "retry", "--all-dead", DATABASE_URL=url)
    assert "Requeued 1 outbox message." in rest.stdout
    after = {r.id: (r.status, r.attempts) for r in asyncio.run(_outbox_rows(url))}
    assert after == {
        dead_sync: ("pending", 0),
        dead_provision: ("pending", 0),
        pending: ("pending", 2),
        done: ("done", 0),
        running: ("pending", 1),
    }


def test_register_webhook_sets_the_stream_app_webhook_url(tmp_path, emulator, emulator_server):
    url = "https://chat.example.com/api/chat/webhooks/stream"
    done = run(tmp_path, "register-webhook", url, **stream_env(emulator_server))
    assert done.returncode == 0, done.stderr
    assert emulator.state.app["webhook_url"] == url
    assert emulator.count("UpdateApp") == 1

    derived = run(
        tmp_path, "register-webhook", ONECREW_PUBLIC_BASE_URL="https://api.example.org/", **stream_env(emulator_server)
    )
    assert derived.returncode == 0, derived.stderr
    assert emulator.state.app["webhook_url"] == "https://api.example.org/api/chat/webhooks/stream"

    assert run(tmp_path, "register-webhook", "ftp://x", **stream_env(emulator_server)).returncode == 2
    assert run(tmp_path, "register-webhook", **stream_env(emulator_server)).returncode == 2
    unconfigured = run(tmp_path, "register-webhook", url)
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
    assert refused.returncode == 1 and "STREAM_API_KEY" in refused.stderr


def test_stream_emulator_command_is_mounted(tmp_path):
    shown = run(tmp_path, "stream-emulator", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--port" in shown.stdout


@pytest.mark.parametrize("args", [["--help"], []])
def test_help_lists_the_commands(tmp_path, args):
    shown = run(tmp_path, *args)
    for command in ("serve", "dev-token", "db", "worker", "register-webhook", "outbox", "stream-emulator"):
        assert command in shown.stdout + shown.stderr
