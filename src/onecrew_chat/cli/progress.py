"""Progress bars for long commands (`sync identities`, `reconcile`): on stderr, and only when it is a terminal.

Scripts and tests read stdout (the summary, or `--json`) and see no bar, no escape codes, nothing extra.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

TICK_S = 0.2  # how often a watched run's counters are copied into the bar


class RunProgress:
    """One bar with a total, done/total, elapsed time and ETA; does nothing unless its console is a terminal."""

    def __init__(self, description: str, total: int | None, *, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._description = description
        self._total = total

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self._description, total=self._total)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, traceback)
            self._progress = None

    def update(self, completed: int, *, total: int | None = None, description: str | None = None) -> None:
        """Move the bar to `completed` (and change the total or the words if given)."""
        if self._progress is None or self._task is None:
            return
        fields: dict[str, Any] = {"completed": completed}
        if total is not None:
            fields["total"] = total
        if description is not None:
            fields["description"] = description
        self._progress.update(self._task, **fields)


@contextlib.asynccontextmanager
async def watching(progress: RunProgress, read: Callable[[], int]) -> AsyncIterator[None]:
    """While the block runs, copy `read()` into the bar every TICK_S (a UI refresh, not a wait for anything)."""
    if not progress.enabled:
        yield
        return
    stop = asyncio.Event()

    async def tick() -> None:
        while True:
            progress.update(read())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
            if stop.is_set():
                progress.update(read())
                return

    ticker = asyncio.create_task(tick(), name="progress")
    try:
        yield
    finally:
        stop.set()
        await ticker
