"""Markdown tables for docs/benchmarks.md from bench/results/http.json: `python -m bench.readme_table [FILE]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "http.json"
DATABASES = {"postgres": "PostgreSQL", "sqlite": "SQLite"}
# The targets: API CPU ms per request over one keep-alive connection (concurrency 1), PostgreSQL.
TARGETS = {
    "unread-count: 10,000 conversations (cached)": "≤ 0.3 ms and ≤ 1.5× the floor",
    "list: page 1 of 500": "≤ 3 ms",
    "webhook: message.new": "≤ 1.5 ms",
    "create: existing pair (other direction)": "≤ 1.2 ms",
    "create: new pair (identities mirrored)": "≤ 4 ms",
}
LOGIN_WAVE_TARGET = "≤ 150 Stream calls"
NEW_PEOPLE_TARGET = "all answered 200 (ready), ≥ 40 a second"


def _find(rows: list[dict], scenario: str, database: str, workers: int, concurrency: int) -> dict | None:
    for row in rows:
        if (row["scenario"], row["database"], row["workers"], row["concurrency"]) == (
            scenario,
            database,
            workers,
            concurrency,
        ):
            return row
    return None


def _cores(report: dict) -> int:
    """The machine's cores, from the report's "2 x Intel(R) Xeon(R) Processor (x86_64)" (bench.__main__.machine);
    2 when the report does not say."""
    count = str(report.get("machine", "")).partition(" x ")[0]
    return int(count) if count.isdigit() else 2


def targets(report: dict) -> str:
    """Targets against what this run measured (PostgreSQL, one process, concurrency 1) and the run's floor."""
    rows = report["results"]
    out = [
        "| Scenario (PostgreSQL, c=1) | Target | API CPU ms/req | Floor ms/req | × floor |",
        "| --- | --- | --- | --- | --- |",
    ]
    for scenario, target in TARGETS.items():
        row = _find(rows, scenario, "postgres", 1, 1)
        if row is not None:
            out.append(
                f"| {scenario} | {target} | {row['server_cpu_ms_per_request']} "
                f"| {row.get('floor_cpu_ms_per_request')} | {row.get('times_floor')} |"
            )
    for row in rows:
        if "pairs of new people" in row["scenario"] and row["database"] == "postgres":
            out.append(
                f"| {row['scenario']} (c={row['concurrency']}) | {NEW_PEOPLE_TARGET} "
                f"| {row['requests'] - row['errors']} of {row['requests']} answered 200, {row['requests_per_s']} a second, "
                f"{round(row['stream_calls_per_request'] * row['requests'])} Stream calls | | |"
            )
    for row in rows:
        if "all_in_stream_after_s" in row:
            calls = row.get("stream_calls", round(row["stream_calls_per_request"] * row["requests"]))
            out.append(
                f"| login wave, {row['requests']:,} new users (c={row['concurrency']}) | {LOGIN_WAVE_TARGET} "
                f"| {calls} Stream calls | | |"
            )
    return "\n".join(out)


def tables(report: dict) -> str:
    """The per-scenario table (one API process) and the 1-against-2-processes table."""
    rows = report["results"]
    scenarios = list(dict.fromkeys(row["scenario"] for row in rows))
    out = [
        "| Scenario | DB | c=1: req/s, p50 ms | c=16: req/s, p50 / p99 ms | c=64: req/s, p50 / p99 ms "
        "| API CPU ms/req (c=1 / 16 / 64) | × floor (c=1) | Stream calls/req | SQL/req | DB round trips/req |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        for database, label in DATABASES.items():
            runs = [_find(rows, scenario, database, 1, c) for c in (1, 16, 64)]
            if None in runs:
                continue
            one, sixteen, many = runs
            errors = sum(run["errors"] for run in runs)
            retried = sum(run.get("retried", 0) for run in runs)
            cpu = " / ".join(str(run["server_cpu_ms_per_request"]) for run in runs)
            trips = one["db_round_trips_per_request"] if database == "postgres" else "in process"
            out.append(
                f"| {scenario} | {label} | {one['requests_per_s']}, {one['p50_ms']} "
                f"| {sixteen['requests_per_s']}, {sixteen['p50_ms']} / {sixteen['p99_ms']} "
                f"| {many['requests_per_s']}, {many['p50_ms']} / {many['p99_ms']}{f' ({errors} failed)' if errors else ''}"
                f"{f' ({retried} resent)' if retried else ''} "
                f"| {cpu} | {one.get('times_floor')} | {one['stream_calls_per_request']} "
                f"| {one['sql_statements_per_request']} | {trips} |"
            )
    out += ["", workers_table(rows, scenarios, _cores(report))]
    waves = [row for row in rows if "all_in_stream_after_s" in row]
    if waves:
        out += [
            "",
            "| Login wave | DB | Concurrency | Answered 200 | req/s, p50 / p99 ms | Stream calls in all "
            "| All in Stream after | API CPU ms/req |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in waves:
            calls = row.get("stream_calls", round(row["stream_calls_per_request"] * row["requests"]))
            resent = f" ({row['retried']} resent)" if row.get("retried") else ""
            out.append(
                f"| {row['scenario']} | {DATABASES.get(row['database'], row['database'])} | {row['concurrency']} "
                f"| {row['requests'] - row['errors']:,} of {row['requests']:,}{resent} "
                f"| {row['requests_per_s']}, {row['p50_ms']} / {row['p99_ms']} | {calls} "
                f"| {row['all_in_stream_after_s']} s | {row['server_cpu_ms_per_request']} |"
            )
    return "\n".join(out)


def ceiling(row: dict, cores: int) -> float:
    """The most 2 processes can do over 1 on `cores` cores shared with the client and the database: one process
    gets a core of its own, two share what the client and PostgreSQL leave (their CPU per request, from the run)."""
    server = row["server_cpu_ms_per_request"]
    others = (row.get("client_cpu_ms_per_request") or 0) + (row.get("database_cpu_ms_per_request") or 0)
    return round(min(2.0, cores * server / (server + others)), 2) if server else 2.0


def workers_table(rows: list[dict], scenarios: list[str], cores: int = 2) -> str:
    """1 against 2 API processes (PostgreSQL): throughput, the cores the API kept busy, and what the client cost.

    Requests a second per API core busy show whether two processes do as much each as one (1.0: they scale with
    the cores they get); the ceiling is the most 2 ÷ 1 can be on this machine's cores (`ceiling`)."""

    def cell(row: dict) -> str:
        return f"{row['requests_per_s']}, {row.get('server_cores')}, {row['server_cpu_ms_per_request']}"

    def per_core(row: dict) -> float:
        return row["requests_per_s"] / row["server_cores"] if row.get("server_cores") else 0.0

    out = [
        "| PostgreSQL | Concurrency | 1 process: req/s, API cores, CPU ms/req | 2 processes: req/s, API cores, CPU ms/req "
        f"| 2 ÷ 1 (req/s) | 2 ÷ 1 (req/s per API core) | ceiling on {cores} cores | client CPU ms/req | load (1 / 2) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        for concurrency in (16, 64):
            single, double = (_find(rows, scenario, "postgres", w, concurrency) for w in (1, 2))
            if single and double and single["requests_per_s"]:
                ratio = round(double["requests_per_s"] / single["requests_per_s"], 2)
                core_ratio = round(per_core(double) / per_core(single), 2) if per_core(single) else ""
                out.append(
                    f"| {scenario} | {concurrency} | {cell(single)} | {cell(double)} | {ratio} | {core_ratio} "
                    f"| {ceiling(double, cores)} | {double.get('client_cpu_ms_per_request')} "
                    f"| {single.get('load_1m')} / {double.get('load_1m')} |"
                )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the tables for the given (or the latest) results file; 2 with one line when it cannot be read."""
    parser = argparse.ArgumentParser(prog="python -m bench.readme_table", description=__doc__.splitlines()[0])
    parser.add_argument(
        "file", nargs="?", type=Path, default=RESULTS, help=f"a results file of `python -m bench` (default: {RESULTS})"
    )
    path: Path = parser.parse_args(argv).file
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {path}: {exc}; run `python -m bench` first, or name a results file", file=sys.stderr)
        return 2
    print(f"Machine: {report['machine']}; {report['seconds']} s; {report['generated_at']}\n")
    print(targets(report) + "\n")
    print(tables(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
