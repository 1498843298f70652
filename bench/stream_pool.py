"""What one Stream call costs the API's process as more calls are in flight: httpcore's pool against ours.

`python -m bench.stream_pool [--latency-ms 80] [--calls 2000] [--concurrency 16,64,256]`

The emulator runs as its own process (real sockets), holding every answer `--latency-ms`, so that as many calls
are in flight as the concurrency asks. In this process, for each concurrency, the gateway sends `--calls` GetApp
calls (a small answer, no parse) from that many tasks, once on the SDK's default HTTP client (httpcore's pool, at most 100 connections) and
once on the gateway's own (stream/pool.py), after a warm-up that opens the connections. Reports this process's
CPU per call (`time.process_time`, the figure a busy machine leaves stable) and calls a second; writes
bench/results/stream_pool.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from getstream import AsyncStream

from bench.harness import STREAM_KEY, STREAM_SECRET
from bench.processes import start_emulator
from onecrew_chat.logging import configure_logging
from onecrew_chat.stream.client import StreamGateway

RESULTS = Path(__file__).parent / "results"


def gateway(base_url: str, pool: str) -> StreamGateway:
    """The gateway on our pool, or on the SDK's default client (httpcore's pool) for comparison."""
    gw = StreamGateway(STREAM_KEY, STREAM_SECRET, base_url, timeout_s=30.0)
    if pool == "httpcore":
        gw._sdk = AsyncStream(
            api_key=STREAM_KEY, api_secret=STREAM_SECRET, base_url=base_url, timeout=30.0, connect_timeout=30.0
        )
    return gw


async def measure(base_url: str, pool: str, concurrency: int, calls: int) -> dict[str, Any]:
    gw = gateway(base_url, pool)
    try:
        await asyncio.gather(*(gw.get_app_settings() for _ in range(concurrency)))  # open the connections
        left = [calls]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                await gw.get_app_settings()

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await gw.close()
    return {
        "pool": pool,
        "concurrency": concurrency,
        "calls": calls,
        "cpu_ms_per_call": round(cpu * 1000 / calls, 3),
        "calls_per_s": round(calls / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_pool", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=80.0)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", default="16,64,256")
    args = parser.parse_args()
    configure_logging("console", "error")
    rows = []
    with tempfile.TemporaryDirectory(prefix="onecrew-bench-") as tmp:
        emulator, url = start_emulator(Path(tmp), STREAM_KEY, STREAM_SECRET)
        try:
            httpx.post(f"{url}/_emulator/faults", json={"latency_ms": args.latency_ms}).raise_for_status()
            # Not Stream's limits under test: GetApp's 10,000 a minute would refuse a fast run.
            httpx.post(f"{url}/_emulator/rate_limits", json={"enabled": False}).raise_for_status()
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                for pool in ("httpcore", "stack"):
                    rows.append(asyncio.run(measure(url, pool, concurrency, args.calls)))
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            emulator.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stream_pool.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
