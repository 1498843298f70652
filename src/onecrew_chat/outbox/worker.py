"""PLACEHOLDER: the outbox worker (run_once, run_forever)."""

from __future__ import annotations

import asyncio


async def run_forever(runtime, stop: asyncio.Event) -> None:
    """Process due outbox rows until `stop` is set."""
    await stop.wait()
