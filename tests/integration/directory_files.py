"""Directory export files for the import tests, and `onecrew-chat import ...` run in a subprocess."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from onecrew_chat.config import to_async_url
from onecrew_chat.db import make_sessionmaker
from tests.integration.test_cli import COMMAND, DEADLINE_S, clean_env, production_env
from tests.support import new_id


def users(count: int, prefix: str = "User") -> list[dict]:
    """`count` users as the main backend exports them."""
    return [
        {"id": new_id(), "name": f"{prefix} {n}", "image_url": f"https://img.example/{n}.png", "category": "crew"}
        for n in range(count)
    ]


def jsonl(rows: list, *, raw_lines: dict[int, str] | None = None) -> bytes:
    """JSON Lines; `raw_lines` puts a literal line at a 1-based line number (bad input)."""
    lines = [json.dumps(row) if not isinstance(row, str) else row for row in rows]
    for number, text in sorted((raw_lines or {}).items()):
        lines.insert(number - 1, text)
    return ("\n".join(lines) + "\n").encode()


def csv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    """CSV with a header line; None is written as an empty field."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in rows])
    return out.getvalue().encode()


def write(path: Path, data: bytes) -> Path:
    """Write `data`, gzipped when the name ends in .gz."""
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def run_import(tmp_path: Path, database_url: str, *args: str, stdin: bytes | None = None, **env: str):
    """`onecrew-chat import ARGS` against `database_url`; stdout and stderr as text."""
    done = subprocess.run(
        [COMMAND, "import", *args],
        cwd=tmp_path,
        env=clean_env(tmp_path, **{**production_env(database_url), **env}),
        input=stdin,
        capture_output=True,
        timeout=DEADLINE_S * 2,
    )
    done.stdout, done.stderr = done.stdout.decode(), done.stderr.decode()
    return done


def summary(done) -> dict:
    """The `--json` summary line."""
    return json.loads(done.stdout.strip().splitlines()[-1])


async def table(database_url: str, *columns) -> list[tuple]:
    """Rows of a table (chosen columns), sorted."""
    engine = create_async_engine(to_async_url(database_url))
    try:
        async with make_sessionmaker(engine)() as session:
            return sorted(tuple(row) for row in (await session.execute(select(*columns))).all())
    finally:
        await engine.dispose()


async def count(database_url: str, model) -> int:
    """How many rows a table has."""
    engine = create_async_engine(to_async_url(database_url))
    try:
        async with engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(model))).scalar_one()
    finally:
        await engine.dispose()
