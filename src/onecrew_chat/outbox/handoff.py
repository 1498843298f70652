"""Handing work to the outbox worker: wake it now instead of at its next poll, or give it a row a writer started.

Writers call `kick` after committing a row (a create or prepare that leaves provisioning to the worker, an internal
message, the reconciler's repairs), and `hand_over` when they stop trying a row's work inline; the worker's loop
(worker.py) waits on the runtime's `outbox_wakeup` between rounds. It lives apart from the loop so that the
services below the entry points never import the loop itself (tests/unit/test_import_graph.py).
"""

from __future__ import annotations

from onecrew_chat.db import unit_of_work
from onecrew_chat.outbox import repository
from onecrew_chat.outbox.jobs import WorkerHost


def kick(runtime: WorkerHost) -> None:
    """Wake the worker now instead of at its next poll (or probe, when paused); call it after committing a row."""
    runtime.outbox_wakeup.set()


async def hand_over(runtime: WorkerHost, message_id: int) -> None:
    """The writer of a row stops trying its work inline (the service it calls is slow or down): the row is due now,
    in a short transaction of its own, and the worker is woken for it."""
    async with unit_of_work(runtime.sessionmaker) as session:
        await repository.make_due(session, message_id)
    kick(runtime)
