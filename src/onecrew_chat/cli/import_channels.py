"""`onecrew-chat import channels` for the command line: a rich progress bar on stderr, the report on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from onecrew_chat.config import Settings
from onecrew_chat.runtime import build_runtime
from onecrew_chat.sync.cutover.report import AdoptionReport
from onecrew_chat.sync.cutover.run import Callbacks, import_channels


def progress_bar(console: Console) -> Progress:
    """Count, rate and time; the total is known only for the writing phase."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


async def run_import_channels(
    settings: Settings, *, dry_run: bool, retry_skipped: bool = False, show_progress: bool = True
) -> AdoptionReport:
    """One run with a runtime of its own; progress goes to stderr so that --json output stays clean."""
    runtime = build_runtime(settings)
    console = Console(stderr=True)
    bar = progress_bar(console)
    reading = bar.add_task("Reading Stream channels", total=None, rate="")
    writing = bar.add_task("Adopting", total=None, rate="", visible=False)

    def on_page(pages: int, new: int) -> None:
        speed = bar.tasks[reading].speed
        bar.update(reading, completed=new, rate=f"{pages} pages" + (f", {speed:.0f}/s" if speed else ""))

    def on_written(done: int, total: int) -> None:
        speed = bar.tasks[writing].speed
        bar.update(writing, completed=done, total=total, visible=True, rate=f"{speed:.0f}/s" if speed else "")

    try:
        if show_progress and console.is_terminal:
            with bar:
                return await import_channels(
                    runtime, dry_run=dry_run, retry_skipped=retry_skipped, callbacks=Callbacks(on_page, on_written)
                )
        return await import_channels(
            runtime, dry_run=dry_run, retry_skipped=retry_skipped, callbacks=Callbacks(_log_page(console), None)
        )
    finally:
        await runtime.close()


def _log_page(console: Console) -> Callable[[int, int], None]:
    """Without a terminal: one line per 10 pages instead of a live bar."""

    def on_page(pages: int, new: int) -> None:
        if pages % 10 == 0:
            console.print(f"read {pages} pages, {new} new channels")

    return on_page


class Report(Protocol):
    """A run's report as the `import channels` and `cutover catch-up` commands print it."""

    def as_json(self) -> dict[str, Any]: ...

    def lines(self) -> list[str]: ...


def print_report(report: Report, *, as_json: bool) -> None:
    """The report as text or JSON on stdout."""
    if as_json:
        print(json.dumps(report.as_json(), indent=2, sort_keys=True))
        return
    out = Console(width=200, soft_wrap=True)
    for line in report.lines():
        out.print(line, markup=False, highlight=False)
