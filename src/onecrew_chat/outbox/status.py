"""The state of this process's outbox worker, for /readyz and metrics: running, making progress, paused."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import WORKER_PAUSED

log = get_logger(__name__)

STATUS_KEY = "outbox_worker_status"


@dataclass
class WorkerStatus:
    """Updated by the worker loop; `stale_after_s` is how long the loop may go without a round and still be alive."""

    stale_after_s: float
    running: bool = True
    paused: bool = False
    pause_reason: str | None = None
    last_round: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        """The loop made progress (a round began or ended)."""
        self.last_round = time.monotonic()

    def alive(self) -> bool:
        """Running, and a round began or ended within `stale_after_s`."""
        return self.running and time.monotonic() - self.last_round <= self.stale_after_s

    def pause(self, reason: str, *, kind: str, message_id: int | None) -> None:
        """Stream refuses our credentials: stop claiming until a probe succeeds (an alert in logs and metrics)."""
        if not self.paused:
            log.critical("outbox.paused", alert=True, reason=reason[:500], kind=kind, id=message_id)
        self.paused, self.pause_reason = True, reason[:500]
        WORKER_PAUSED.set(1)

    def resume(self) -> None:
        """A call with our credentials worked again: claim as usual."""
        if self.paused:
            log.warning("outbox.resumed", reason_was=self.pause_reason)
        self.paused, self.pause_reason = False, None
        WORKER_PAUSED.set(0)


def worker_status(runtime: Any) -> WorkerStatus | None:
    """This process's worker state, or None when the process runs no worker."""
    status = getattr(runtime, "extras", {}).get(STATUS_KEY)
    return status if isinstance(status, WorkerStatus) else None
