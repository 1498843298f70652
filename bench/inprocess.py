"""`make bench BENCH_ARGS=--in-process`: the app driven over ASGI in the bench process, the emulator on a thread.

Server time from Server-Timing; no sockets between the client and the app. Writes bench/results/bench.json.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import scenarios
from bench.harness import Bench, prepare_database, reset_database, running, start_emulator
from onecrew_chat.logging import configure_logging

RESULTS = Path(__file__).parent / "results"
# Measured on the old backend (docs/reference/origin.md): sleeps, sequential look-ups and re-upserts.
OLD_BACKEND_CREATE_MS = 11_500


async def run_database(kind: str, url: str, emulator, base_url: str, n: int) -> list[dict]:
    """Every scenario on one database."""
    results = []
    large_listing = functools.partial(scenarios.listing, conversations=50_000)
    for scenario in (scenarios.create_pairs, scenarios.tokens, scenarios.listing, large_listing):
        await reset_database(url)
        emulator.reset()
        async with running(Bench(kind, url, emulator, base_url)) as bench:
            results += [s.summary() for s in await scenario(bench, n)]
    await reset_database(url)
    emulator.reset()
    cold = Bench(kind, url, emulator, base_url, unread_cache_ttl_s=0)
    async with running(cold) as bench:
        owner = await scenarios.seed_unread(bench)
        results += [s.summary() for s in await scenarios.unread(bench, n, owner, label="no cache", target_ms=5)]
    async with running(Bench(kind, url, emulator, base_url)) as bench:
        results += [s.summary() for s in await scenarios.unread(bench, n, owner, label="cached", target_ms=5)]
    return results


def print_table(results: list[dict]) -> None:
    """The results as a table on the terminal."""
    table = Table(title="onecrew-chat benchmark (server time from Server-Timing; medians)")
    for column in ("scenario", "db", "n", "median ms", "p95 ms", "target ms", "Stream calls", "SQL stmts"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for row in results:
        ok = row["target_ms"] is None or (row["median_ms"] is not None and row["median_ms"] <= row["target_ms"])
        table.add_row(
            row["scenario"],
            row["database"],
            str(row["n"]),
            f"[{'green' if ok else 'red'}]{row['median_ms']}[/]",
            str(row["p95_ms"]),
            "" if row["target_ms"] is None else str(row["target_ms"]),
            str(row["stream_calls_median"]),
            str(row["db_statements_median"]),
        )
    console = Console(width=160)
    console.print(table)
    for row in results:
        if row["scenario"].startswith("create: new pair, user unknown") and row["median_ms"]:
            console.print(
                f"{row['database']}: a new conversation takes {row['median_ms']} ms of server time, "
                f"{OLD_BACKEND_CREATE_MS / row['median_ms']:.0f}x less than the old backend's ~11.5 s"
            )


def main(args) -> None:
    """Run in process, report."""
    configure_logging("console", "error")  # the table is the output; warnings of deferred work would drown it

    emulator, server = start_emulator()
    results: list[dict] = []
    try:
        kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
        for kind in kinds:
            try:
                url, drop = prepare_database(kind, args.postgres_url)
            except Exception as exc:  # PostgreSQL may be absent on a laptop: say so and go on
                print(f"skipping {kind}: {exc}")
                continue
            try:
                results += asyncio.run(run_database(kind, url, emulator, server.base_url, args.n))
            finally:
                drop()
    finally:
        server.stop()
    print_table(results)
    out = args.out or RESULTS / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "generated_at": datetime.now(UTC).isoformat(),
                "python": platform.python_version(),
                "machine": f"{platform.machine()} x{os.cpu_count()}",
                "requests_per_scenario": args.n,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"written {out}")
