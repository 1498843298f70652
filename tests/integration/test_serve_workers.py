"""`onecrew-chat serve --workers 2`: two API processes answer on one port, and one outbox worker runs among them."""

from __future__ import annotations

import json
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


@pytest.mark.skipif(not REUSE_PORT, reason="SO_REUSEPORT spreads connections on Linux only")
def test_serve_with_two_workers_spreads_keep_alive_connections_over_both_processes(tmp_path):
    server = Running(tmp_path, "serve", "--port", "0", "--workers", "2", ONECREW_DEBUG_ENDPOINTS="true")
    try:
        server.wait_for(READY_LINE)
        url = base_url(server)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        # Each process listens on a socket of its own (SO_REUSEPORT): the kernel, not whichever process accepts
        # first, gives each new connection to one of them. The ready line can come before the second process has
        # bound its socket on a loaded machine; the connections below must find both listening.
        deadline = time.monotonic() + DEADLINE_S
        while _listening_sockets(port) < 2:
            assert time.monotonic() < deadline, f"only {_listening_sockets(port)} process listens after {DEADLINE_S}s"
            time.sleep(0.05)  # polling interval of a deadline-bounded wait
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
        assert again <= pids
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.seen
