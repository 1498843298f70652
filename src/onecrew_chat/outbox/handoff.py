"""Handing work to the outbox worker: wake it now instead of at its next poll.

Writers call `kick` after committing a row (a create or prepare that leaves provisioning to the worker, an internal
message, the reconciler's repairs); the worker's loop (worker.py) waits on the same event between rounds. It
lives apart from the loop so that the services below the entry points never import the loop itself
(tests/unit/test_import_graph.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

WAKEUP_KEY = "outbox_wakeup"


def wakeup_event(runtime: Any) -> asyncio.Event:
    """The event a running worker also waits on between rounds."""
    event: asyncio.Event = runtime.extras.setdefault(WAKEUP_KEY, asyncio.Event())
    return event


def kick(runtime: Any) -> None:
    """Wake the worker now instead of at its next poll (or probe, when paused); call it after committing a row."""
    wakeup_event(runtime).set()
