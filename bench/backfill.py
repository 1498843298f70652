"""The identity backfill against Stream's rate limits, with one call in flight and with several.

`python -m bench.backfill [--db sqlite|postgres] [--identities 20000] [--latency-ms 250] [--in-flight 1,8]`

Per in-flight count: a fresh database with `--identities` directory users none of which Stream holds, the emulator
as its own process enforcing Stream's limits (UpdateUsers: 300 a minute, 10 a second) and holding every answer
`--latency-ms` (a distant Stream, or a loaded machine: what one round trip costs decides how far one call at a
time falls short of the limit), then `sync identities` as a function in this process. Each run starts on a new
minute of the emulator's clock, so each has the same per-minute allowance. Reports seconds, identities and calls
a second, calls Stream refused and whether every identity ended in Stream; writes bench/results/backfill.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.cutover_live import settings_for
from bench.harness import STREAM_KEY, STREAM_SECRET, prepare_database
from bench.processes import start_emulator
from bench.seed import add_users
from onecrew_chat.db import make_engine, make_sessionmaker
from onecrew_chat.logging import configure_logging
from onecrew_chat.runtime import build_runtime
from onecrew_chat.sync.reconcile.backfill import backfill_identities

RESULTS = Path(__file__).parent / "results"
SEED_CHUNK = 5_000


async def seed(url: str, identities: int) -> None:
    engine = make_engine(url=url)
    try:
        async with make_sessionmaker(engine)() as session:
            for start in range(0, identities, SEED_CHUNK):
                await add_users(session, min(SEED_CHUNK, identities - start), "Backfilled")
                await session.commit()
    finally:
        await engine.dispose()


def next_minute() -> None:
    """Wait for the next wall-clock minute (the emulator's per-minute windows start on it)."""
    time.sleep(60 - time.time() % 60 + 0.05)  # a bench, not a test: waiting for the clock is the point


async def backfill(url: str, emulator_url: str, in_flight: int) -> dict[str, Any]:
    runtime = build_runtime(settings_for(url, emulator_url))
    try:
        started = time.perf_counter()
        report = await backfill_identities(runtime, in_flight=in_flight)
        seconds = time.perf_counter() - started
    finally:
        await runtime.close()
    return {"seconds": round(seconds, 1), "upserted": report.upserted, "stream_calls": report.stream_calls}


def run(kind: str, admin_url: str, identities: int, latency_ms: float, in_flight: int) -> dict[str, Any]:
    url, drop = prepare_database(kind, admin_url)
    try:
        asyncio.run(seed(url, identities))
        with tempfile.TemporaryDirectory(prefix="onecrew-bench-") as tmp:
            emulator, emulator_url = start_emulator(Path(tmp), STREAM_KEY, STREAM_SECRET)
            try:
                with httpx.Client(base_url=emulator_url, timeout=30) as admin:
                    admin.post("/_emulator/rate_limits", json={"enabled": True}).raise_for_status()
                    admin.post("/_emulator/faults", json={"latency_ms": latency_ms}).raise_for_status()
                    next_minute()
                    result = asyncio.run(backfill(url, emulator_url, in_flight))
                    log = admin.get("/_emulator/requests").json()["requests"]
                    users = admin.get("/_emulator/state").json()["users"]
            finally:
                emulator.stop()
    finally:
        drop()
    upserts = [r for r in log if r["operation"] == "UpdateUsers"]
    refused = sum(r["status"] == 429 for r in upserts)
    return {
        "database": kind,
        "identities": identities,
        "latency_ms": latency_ms,
        "in_flight": in_flight,
        **result,
        "identities_per_s": round(result["upserted"] / result["seconds"], 1),
        "calls_per_s": round(len(upserts) / result["seconds"], 2),
        "refused_429": refused,
        "all_in_stream": users == identities,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--identities", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=250.0)
    parser.add_argument("--in-flight", default="1,8", help="comma-separated in-flight counts to compare")
    args = parser.parse_args()
    configure_logging("console", "error")
    admin_url = os.environ.get("ONECREW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    rows = []
    for in_flight in (int(n) for n in args.in_flight.split(",")):
        rows.append(run(args.db, admin_url, args.identities, args.latency_ms, in_flight))
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backfill.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
