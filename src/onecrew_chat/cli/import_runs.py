"""The directory import run behind `onecrew-chat import users|companies|members`: the source, the batches and
the progress bar on stderr (cli/imports.py holds the commands and the closing summary)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from onecrew_chat.accounts.directory_import import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_REJECTIONS
from onecrew_chat.accounts.directory_import.files import FileSource
from onecrew_chat.accounts.directory_import.kinds import KINDS
from onecrew_chat.accounts.directory_import.runner import run_import
from onecrew_chat.accounts.directory_import.sql_source import SqlSource
from onecrew_chat.db import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from onecrew_chat.accounts.directory_import.runner import Summary
    from onecrew_chat.config import Settings


class RateColumn(ProgressColumn):
    """Rows per second."""

    def render(self, task: Task) -> Text:
        """The task's speed, or nothing until rich has measured one."""
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "", style="progress.data.speed")


def _sql_for(settings: Settings, kind: str) -> str:
    return {
        "users": settings.import_users_sql,
        "companies": settings.import_companies_sql,
        "members": settings.import_members_sql,
    }[kind]


async def run_directory_import(
    settings: Settings,
    kind_name: str,
    file: str | None,
    from_sql: str | None,
    fmt: str | None,
    batch: int,
    show_progress: bool,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_rejections: int = DEFAULT_MAX_REJECTIONS,
    dry_run: bool = False,
) -> Summary:
    """Import one kind from a file or OneCrew's database in batches; the bar shows only when `show_progress`."""
    kind = KINDS[kind_name]
    source = (
        SqlSource(from_sql, _sql_for(settings, kind_name))
        if from_sql
        else FileSource(file or "-", kind, fmt, max_line_bytes=max_line_bytes)
    )
    try:
        total = await source.total() if show_progress else None
    except BaseException:
        await source.close()
        raise
    engine = make_engine(settings)
    columns = (
        TextColumn(f"importing {kind_name}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=Console(stderr=True), disable=not show_progress) as bar:
            task = bar.add_task(kind_name, total=total)
            summary = await run_import(
                make_sessionmaker(engine),
                kind,
                source,
                batch_size=batch,
                max_rejections=max_rejections,
                progress=lambda done: bar.advance(task, done),
                dry_run=dry_run,
            )
            if summary.stopped is None:  # blank lines counted in the estimate: show the bar full
                bar.update(task, total=bar.tasks[0].completed)
            return summary
    finally:
        await engine.dispose()
