"""Emulator CPU cost per get-or-create with two members, measured in process.

Drives the emulator's ASGI app directly (no sockets, no HTTP client), so the figure is the
emulator's own cost: auth, routing, the handler, rendering and JSON. Each request is timed with
time.process_time; the table shows the median and p95 in microseconds.

    .venv/bin/python bench/emulator_cpu.py [--requests N]

Writes bench/results/emulator.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import jwt

from stream_emulator import Emulator, EmulatorApp

RESULTS = Path(__file__).resolve().parent / "results" / "emulator.json"


class Driver:
    """Calls the ASGI app the way a server would, one request at a time."""

    def __init__(self, emulator: Emulator) -> None:
        self.app = EmulatorApp(emulator)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            token = jwt.encode({"server": True}, emulator.api_secret, algorithm="HS256")
        self.headers = [
            (b"authorization", token.encode()),
            (b"stream-auth-type", b"jwt"),
            (b"content-type", b"application/json"),
        ]
        self.query = f"api_key={emulator.api_key}".encode()

    async def request(self, method: str, path: str, body: dict | None) -> int:
        """Send one request; returns the status."""
        payload = json.dumps(body).encode() if body is not None else b""
        scope = {"type": "http", "method": method, "path": path, "query_string": self.query, "headers": self.headers}
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        return sent[0]["status"]


def _body(dialect: str, channel_id: str) -> tuple[str, dict]:
    if dialect == "v2":
        return (
            f"/api/v2/chat/channels/messaging/{channel_id}/query",
            {
                "data": {
                    "created_by_id": "alice",
                    "members": [{"user_id": "alice"}, {"user_id": "bob"}],
                    "custom": {"name": "bench"},
                }
            },
        )
    return (
        f"/channels/messaging/{channel_id}/query",
        {
            "state": False,
            "watch": False,
            "presence": False,
            "data": {"name": "bench", "members": ["alice", "bob"], "created_by": {"id": "alice"}},
        },
    )


async def measure(dialect: str, create: bool, requests: int) -> list[float]:
    """Per-request CPU microseconds for `requests` get-or-creates."""
    emulator = Emulator()
    driver = Driver(emulator)
    await driver.request("POST", "/users", {"users": {"alice": {"id": "alice"}, "bob": {"id": "bob"}}})
    samples = []
    for i in range(requests + 200):
        path, body = _body(dialect, f"bench-{i}" if create else "bench-existing")
        start = time.process_time()
        status = await driver.request("POST", path, body)
        elapsed = time.process_time() - start
        assert status == 201, status
        if i >= 200:  # the first calls warm caches and the allocator
            samples.append(elapsed * 1e6)
    return samples


def main() -> None:
    """Run every case, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    rows = []
    for dialect in ("v2", "v1"):
        for create in (True, False):
            samples = asyncio.run(measure(dialect, create, args.requests))
            samples.sort()
            rows.append(
                {
                    "dialect": dialect,
                    "case": "create new channel" if create else "existing channel",
                    "requests": len(samples),
                    "median_us": round(statistics.median(samples), 1),
                    "p95_us": round(samples[int(len(samples) * 0.95)], 1),
                }
            )
    print(f"{'dialect':8} {'case':20} {'requests':>8} {'median µs':>10} {'p95 µs':>8}")
    for row in rows:
        print(f"{row['dialect']:8} {row['case']:20} {row['requests']:>8} {row['median_us']:>10} {row['p95_us']:>8}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "emulator CPU per get-or-create with 2 members",
                "measured_with": "time.process_time per in-process ASGI request",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
