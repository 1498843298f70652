"""`make bench`: every scenario over real HTTP (API, emulator and database as separate processes) on SQLite and
PostgreSQL, at concurrency 1, 16 and 64; a table on the terminal and bench/results/http.json.

`--in-process` runs the older in-process bench instead (bench/inprocess.py, bench/results/bench.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
COLUMNS = (
    ("scenario", "scenario"),
    ("db", "database"),
    ("proc", "workers"),
    ("conc", "concurrency"),
    ("req", "requests"),
    ("err", "errors"),
    ("req/s", "requests_per_s"),
    ("p50 ms", "p50_ms"),
    ("p95 ms", "p95_ms"),
    ("p99 ms", "p99_ms"),
    ("API CPU ms/req", "server_cpu_ms_per_request"),
    ("API cores", "server_cores"),
    ("floor CPU ms/req", "floor_cpu_ms_per_request"),
    ("x floor", "times_floor"),
    ("emu CPU ms/req", "emulator_cpu_ms_per_request"),
    ("client CPU ms/req", "client_cpu_ms_per_request"),
    ("PG CPU ms/req", "database_cpu_ms_per_request"),
    ("DB conns opened", "database_connections_opened"),
    ("busy %", "machine_busy_percent"),
    ("load", "load_1m"),
    ("Stream calls/req", "stream_calls_per_request"),
    ("SQL/req", "sql_statements_per_request"),
    ("DB round trips/req", "db_round_trips_per_request"),
)


def machine() -> str:
    """`nproc` and the CPU model, as docs/benchmarks.md names the machine."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{len(os.sched_getaffinity(0))} x {model} ({platform.machine()})"


def print_table(rows: list[dict], title: str) -> None:
    """The rows as a table on the terminal."""
    table = Table(title=title)
    for header, _ in COLUMNS:
        table.add_column(header, justify="left" if header == "scenario" else "right")
    for row in rows:
        table.add_row(*("" if row.get(key) is None else str(row[key]) for _, key in COLUMNS))
    Console(width=220).print(table)


def _progress(item) -> None:
    if isinstance(item, str):
        print(item, flush=True)
    else:
        print(
            f"  {item['database']} x{item['workers']} c={item['concurrency']:<3} {item['scenario']:<45} "
            f"{item['requests_per_s']:>8} req/s  p50 {item['p50_ms']} ms  CPU {item['server_cpu_ms_per_request']} ms/req  "
            f"({item['server_cores']} cores)  client {item['client_cpu_ms_per_request']} ms/req  "
            f"PG {item['database_cpu_ms_per_request']} ms/req  conns {item['database_connections_opened']}  "
            f"busy {item['machine_busy_percent']} %  load {item['load_1m']}",
            flush=True,
        )


def main() -> None:
    """Parse arguments, run, report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--in-process", action="store_true", help="the app over ASGI in this process (older bench)")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "-n", type=int, default=None, help="requests per cheap scenario at concurrency 1 (HTTP: 50; in-process: 200)"
    )
    parser.add_argument("--workers", default="1,2", help="API process counts to run on PostgreSQL (HTTP mode)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ONECREW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--only", default="", help="comma-separated parts of scenario names: run only the scenarios that contain one"
    )
    args = parser.parse_args()
    if args.in_process:
        from bench import inprocess

        args.n = args.n or 200
        inprocess.main(args)
        return

    from bench.http_run import run_database

    base = args.n or 50
    started = time.monotonic()
    rows: list[dict] = []
    for kind in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        workers = [int(w) for w in args.workers.split(",")] if kind == "postgres" else [1]
        try:
            rows += run_database(
                kind, args.postgres_url, base, workers, _progress, [o for o in args.only.split(",") if o]
            )
        except OSError as exc:  # PostgreSQL may be absent on a laptop: say so and go on
            print(f"skipping {kind}: {exc}")
    where = machine()
    print_table(rows, f"onecrew-chat over HTTP on {where} (latency measured by the client)")
    out = args.out or RESULTS / "http.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "generated_at": datetime.now(UTC).isoformat(),
                "python": platform.python_version(),
                "machine": where,
                "seconds": round(time.monotonic() - started),
                "mode": "http",
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written {out} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
