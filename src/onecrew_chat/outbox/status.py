"""The state of this process's outbox worker, for /readyz and metrics: running, making progress, paused."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import WORKER_PAUSED

log = get_logger(__name__)


@dataclass
class WorkerStatus:
    """Updated by the worker loop; `stale_after_s` is how long the loop may go without a round and still be alive."""

    stale_after_s: float
    running: bool = True
    paused: bool = False
    pause_reason: str | None = None
    last_round: float = field(default_factory=time.monotonic)
    # Since when every round has failed (e.g. the database is unreachable), and the last round's error.
    failing_since: float | None = None
    last_error: str | None = None

    def beat(self) -> None:
        """The loop made progress (a round began or ended)."""
        self.last_round = time.monotonic()

    def alive(self) -> bool:
        """Running, and a round began or ended within `stale_after_s`."""
        return self.running and time.monotonic() - self.last_round <= self.stale_after_s

    def round_failed(self, error: str) -> None:
        """A round failed as a whole (it could not claim or record: the database is unreachable, or a bug)."""
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_error = (error.splitlines() or [""])[0][:300]

    def round_succeeded(self) -> None:
        """A round ran to its end."""
        self.failing_since, self.last_error = None, None

    def liveness_problem(self) -> str | None:
        """Why the loop is not alive (a restart may help), or None: stopped, stuck past `stale_after_s`, or failing
        every round for longer than that."""
        now = time.monotonic()
        if not self.running:
            return "the worker's loop has stopped"
        if now - self.last_round > self.stale_after_s:
            return f"the worker's loop has made no progress for {now - self.last_round:.0f} s (over {self.stale_after_s:g} s)"
        if self.failing_since is not None and now - self.failing_since > self.stale_after_s:
            return (
                f"every round of the worker's loop has failed for {now - self.failing_since:.0f} s: {self.last_error}"
            )
        return None

    def readiness_problem(self) -> str | None:
        """Why the loop does no work right now, or None: not alive, paused, or its last round failed."""
        problem = self.liveness_problem()
        if problem is not None:
            return problem
        if self.paused:
            return f"worker paused: Stream refuses our credentials ({self.pause_reason}); fix STREAM_API_KEY/SECRET"
        if self.failing_since is not None:
            return f"the worker's last round failed: {self.last_error}"
        return None

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
