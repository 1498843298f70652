"""`onecrew-chat serve --workers 2`: two API processes answer on one port, and one outbox worker runs among them."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from onecrew_chat.cli.local_instance import REUSE_PORT
from tests.integration.test_cli import DEADLINE_S, Running
from tests.integration.test_serve import READY_LINE, base_url


def _drain(server: Running) -> list[tuple[str, str]]:
    """Every line the (stopped) process wrote, once both of its streams have ended."""
    closed = server.closed
    while closed < 2:
        name, line = server.lines.get(timeout=DEADLINE_S)
        if line is None:
            closed += 1
        else:
            server.seen.append((name, line))
    return server.seen


def test_serve_with_two_workers_answers_from_two_processes_on_one_port(tmp_path):
    server = Running(tmp_path, "serve", "--port", "0", "--workers", "2", ONECREW_DEBUG_ENDPOINTS="true")
    try:
        server.wait_for(READY_LINE)
        url = base_url(server)
        pids: set[int] = set()
        deadline = time.monotonic() + DEADLINE_S
        while len(pids) < 2:  # a new connection each time: the kernel gives it to whichever process accepts first
            assert time.monotonic() < deadline, f"only processes {pids} answered within {DEADLINE_S}s"
            with httpx.Client(timeout=60) as client:
                answer = client.get(f"{url}/_debug/process")
            assert answer.status_code == 200, answer.text
            pids.add(answer.json()["data"]["pid"])
        assert server.proc.pid not in pids  # the parent supervises, the children serve
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.seen
    records = []
    for name, line in _drain(server):
        if name == "stderr" and line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    events = [record.get("event") for record in records]
    assert events.count("serve.process_ready") == 2
    assert events.count("outbox.worker_started") == 1, events
    # Every process serves on uvloop with httptools (runtime dependencies), not asyncio's loop and h11.
    ready = [record for record in records if record.get("event") == "serve.process_ready"]
    assert {(record.get("loop"), record.get("http")) for record in ready} == {("uvloop", "httptools")}, ready


def _listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on this local port (/proc/net/tcp and tcp6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def _started_pid(server: Running, index: int) -> int:
    """The pid of API process `index`, from the parent's `serve.process_started` log line."""
    while True:
        server.wait_for('"serve.process_started"')
        record = json.loads(server.seen[-1][1])
        if record.get("index") == index:
            return int(record["pid"])


@pytest.mark.skipif(not REUSE_PORT, reason="SO_REUSEPORT spreads connections on Linux only")
def test_serve_with_two_workers_is_ready_only_once_both_processes_accept_keep_alive_connections(tmp_path):
    server = Running(tmp_path, "serve", "--port", "0", "--workers", "2", ONECREW_DEBUG_ENDPOINTS="true")
    try:
        # The second process is held until the first one accepts: a slow start, as on a loaded machine. The ready
        # line must wait for it, not follow the first process.
        second = _started_pid(server, index=1)
        os.kill(second, signal.SIGSTOP)
        try:
            server.wait_for('"serve.process_ready"')
        finally:
            os.kill(second, signal.SIGCONT)
        server.wait_for(READY_LINE)
        url = base_url(server)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        # Right after the ready line each process listens on a socket of its own (SO_REUSEPORT): the kernel, not
        # whichever process accepts first, gives each new connection to one of them.
        assert _listening_sockets(port) == 2
        # Keep-alive connections opened together, as a client's pool does: each is answered by one process for its
        # whole life, and both processes get some (32 connections: by the kernel's hash of each connection).
        clients = [httpx.Client(timeout=10) for _ in range(32)]
        try:
            with ThreadPoolExecutor(len(clients)) as pool:
                answers = list(pool.map(lambda client: client.get(f"{url}/_debug/process"), clients))
            assert {answer.status_code for answer in answers} == {200}
            pids = {answer.json()["data"]["pid"] for answer in answers}
            again = {client.get(f"{url}/_debug/process").json()["data"]["pid"] for client in clients[:4]}
        finally:
            for client in clients:
                client.close()
        assert len(pids) == 2, f"every connection landed in process {pids}"
        assert second in pids
        assert again <= pids
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.seen


def _never_accepts(_listener, _index, _ready) -> None:
    """An API process whose start hangs (a database that never answers): it never says it accepts."""
    signal.pause()  # until the supervisor stops it


def test_serve_with_workers_gives_up_when_a_process_never_accepts(monkeypatch):
    from onecrew_chat.cli import serve_processes

    monkeypatch.setattr(serve_processes, "READY_DEADLINE_S", 1.0)
    announced = []
    supervisor = serve_processes.Supervisor(_never_accepts, ("127.0.0.1", 0), 2, (), lambda: announced.append(1))
    assert supervisor.run() == 1  # stopped with the failure exit code, not left half up
    assert announced == []  # and it never said it was serving
