"""`onecrew-chat cutover begin|end|status|catch-up` for the command line (docs/cutover.md)."""

from __future__ import annotations

from rich.console import Console

from onecrew_chat.cli.import_channels import print_report as print_report  # the same report printer
from onecrew_chat.config import Settings
from onecrew_chat.db import make_engine, make_sessionmaker
from onecrew_chat.runtime import build_runtime
from onecrew_chat.sync.cutover.catchup import CatchUpReport, catch_up
from onecrew_chat.sync.cutover.switch import Switch, read_switch, set_switch


async def switch(settings: Settings, *, on: bool | None) -> tuple[Switch, bool]:
    """Set the cut-over switch (None: only read it); returns it and whether it changed."""
    engine = make_engine(settings)
    try:
        sessionmaker = make_sessionmaker(engine)
        if on is None:
            return await read_switch(sessionmaker), False
        return await set_switch(sessionmaker, on=on)
    finally:
        await engine.dispose()


def describe(state: Switch) -> str:
    """One line for the operator."""
    if state.in_progress:
        return (
            f"Cut-over in progress since {state.began_at:%Y-%m-%d %H:%M:%S} UTC: a create for a pair the service "
            "does not know adopts the pair's existing Stream channel first."
        )
    if state.ended_at is not None:
        return f"No cut-over in progress (the last one ended {state.ended_at:%Y-%m-%d %H:%M:%S} UTC)."
    return "No cut-over in progress (never begun)."


async def run_catch_up(settings: Settings, *, dry_run: bool, retry_skipped: bool) -> CatchUpReport:
    """One catch-up with a runtime of its own; a line on stderr every 50 pages."""
    runtime = build_runtime(settings)
    console = Console(stderr=True)

    def on_page(checked: int) -> None:
        if checked % 1500 == 0:
            console.print(f"checked {checked} conversations")

    try:
        return await catch_up(runtime, dry_run=dry_run, retry_skipped=retry_skipped, on_page=on_page)
    finally:
        await runtime.close()
