"""`make bench`: 100,000 users through `onecrew-chat import users FILE`, on SQLite and PostgreSQL (target: < 60 s).

Each database gets three runs of the real command in a subprocess (start-up included): the first import
(every row created), the same file again (every row unchanged), and a file where every name changed (every
row updated). Writes bench/results/import.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.harness import prepare_database

RESULTS = Path(__file__).parent / "results"
COMMAND = str(Path(sys.executable).with_name("onecrew-chat"))
TARGET_S = 60.0


def write_users(path: Path, ids: list[str], prefix: str) -> None:
    """One JSON line per user, as the main backend would export them."""
    with path.open("w") as out:
        for n, user_id in enumerate(ids):
            row = {
                "id": user_id,
                "name": f"{prefix} {n}",
                "image_url": f"https://img.example/{user_id}.png",
                "category": "crew" if n % 2 else "talent",
            }
            out.write(json.dumps(row) + "\n")


def run(url: str, path: Path, workdir: Path) -> tuple[float, dict]:
    """Wall time of one `onecrew-chat import users PATH --json`, and its summary."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONECREW_", "STREAM_", "DATABASE_URL"))}
    # The database alone (import never calls Stream): development mode says so; production would need every setting.
    env.update(DATABASE_URL=url, ONECREW_MODE="development", ONECREW_LOG_LEVEL="warning", ONECREW_DATA_DIR=str(workdir))
    started = time.perf_counter()
    done = subprocess.run([COMMAND, "import", "users", str(path), "--json"], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments, run, report."""
    parser = argparse.ArgumentParser(prog="python -m bench.import_directory", description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ONECREW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "import.json")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="onecrew-import-bench-"))
    ids = [str(uuid.uuid4()) for _ in range(args.rows)]
    original, renamed = workdir / "users.jsonl", workdir / "users-renamed.jsonl"
    write_users(original, ids, "User")
    write_users(renamed, ids, "Renamed")
    results = []
    for kind in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        try:
            url, drop = prepare_database(kind, args.postgres_url)
        except Exception as exc:  # PostgreSQL may be absent on a laptop: say so and go on
            print(f"skipping {kind}: {exc}")
            continue
        try:
            for label, path, expect in (
                ("first import", original, "created"),
                ("same file again", original, "unchanged"),
                ("every name changed", renamed, "updated"),
            ):
                seconds, summary = run(url, path, workdir)
                if summary[expect] != args.rows:
                    raise RuntimeError(f"{label}: expected {args.rows} {expect}, got {summary}")
                results.append(
                    {
                        "database": kind,
                        "run": label,
                        "rows": args.rows,
                        "seconds": round(seconds, 2),
                        "rows_per_s": round(args.rows / seconds),
                        "target_s": TARGET_S,
                    }
                )
        finally:
            drop()

    table = Table(title=f"onecrew-chat import users: {args.rows:,} rows, whole command (wall time)")
    for column in ("database", "run", "seconds", "rows/s", "target s"):
        table.add_column(column, justify="left" if column in ("database", "run") else "right")
    for row in results:
        colour = "green" if row["seconds"] < TARGET_S else "red"
        table.add_row(
            row["database"],
            row["run"],
            f"[{colour}]{row['seconds']}[/]",
            f"{row['rows_per_s']:,}",
            str(row["target_s"]),
        )
    Console(width=120).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "generated_at": datetime.now(UTC).isoformat(),
                "python": platform.python_version(),
                "machine": f"{platform.machine()} x{os.cpu_count()}",
                "results": results,
            },
            indent=2,
        )
    )
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
