"""`onecrew-chat serve --workers 2`: two API processes answer on one port, and one outbox worker runs among them."""

from __future__ import annotations

import json
import signal
import time

import httpx

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
        url = base_url(server.wait_for(READY_LINE))
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
    events = []
    for name, line in _drain(server):
        if name == "stderr" and line.startswith("{"):
            try:
                events.append(json.loads(line).get("event"))
            except json.JSONDecodeError:
                pass
    assert events.count("serve.process_ready") == 2
    assert events.count("outbox.worker_started") == 1, events
