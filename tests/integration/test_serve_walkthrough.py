"""What `make run` prints after the first request: the service token for the internal operations, and three steps
that move Amr's unread count; pasted as printed, they do what they say."""

from __future__ import annotations

import shlex
import signal

import httpx

from tests.integration.test_serve import base_url, printed_request, start
from tests.support import wait_until

DEADLINE_S = 30


def _commands(stdout: list[str]) -> list[list[str]]:
    """Every printed curl command, its continuation lines joined, split as a shell would."""
    commands, current = [], None
    for line in stdout:
        text = line.strip()
        if current is None and text.startswith("curl "):
            current = []
        if current is not None:
            current.append(text.removesuffix("\\"))
            if not text.endswith("\\"):
                commands.append(shlex.split(" ".join(current)))
                current = None
    return commands


def _send(client: httpx.Client, args: list[str]) -> httpx.Response:
    url = next(a for a in args if a.startswith("http"))
    headers = dict(args[i + 1].split(": ", 1) for i, a in enumerate(args) if a == "-H")
    method = args[args.index("-X") + 1] if "-X" in args else "GET"
    body = args[args.index("-d") + 1].encode() if "-d" in args else None
    return client.request(method, url, headers=headers, content=body)


async def test_the_printed_service_token_and_unread_steps_work(tmp_path):
    server, stdout = start(tmp_path)
    try:
        text = "\n".join(stdout)
        assert "service token: " in text and "Send a message, watch the unread count move" in text
        url = base_url(server)
        create_url, headers, body = printed_request(stdout)
        status, unread, message = _commands(stdout)[1:4]
        with httpx.Client(timeout=10) as client:
            assert client.post(create_url, headers=headers, json=body).status_code == 200
            report = _send(client, status)
            assert report.status_code == 200 and "database" in report.json()["data"], report.text

            before = _send(client, unread)
            assert before.status_code == 200, before.text
            count = before.json()["data"]["unread_count"]
            sent = _send(client, message)
            assert sent.status_code == 200, sent.text

            async def moved() -> bool:
                return _send(client, unread).json()["data"]["unread_count"] == count + 1

            await wait_until(moved, timeout=DEADLINE_S, what="Amr's unread count to move by one")
            assert url in text
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.seen
