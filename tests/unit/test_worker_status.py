"""WorkerStatus says when the outbox loop is not alive (a restart may help) and when it does no work (not ready)."""

from __future__ import annotations

import pytest

from onecrew_chat.outbox import status as status_module
from onecrew_chat.outbox.status import WorkerStatus


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(status_module.time, "monotonic", fake)
    return fake


def test_a_loop_that_beats_is_alive_and_ready(clock):
    status = WorkerStatus(stale_after_s=60, last_round=clock())
    clock.now += 59
    status.beat()
    clock.now += 59
    assert status.liveness_problem() is None and status.readiness_problem() is None


def test_a_stuck_loop_is_neither_alive_nor_ready(clock):
    status = WorkerStatus(stale_after_s=60, last_round=clock())
    clock.now += 61
    assert "no progress for 61 s" in (status.liveness_problem() or "")
    assert status.readiness_problem() == status.liveness_problem()


def test_a_stopped_loop_is_not_alive(clock):
    status = WorkerStatus(stale_after_s=60, last_round=clock())
    status.running = False
    assert status.liveness_problem() == "the worker's loop has stopped"


def test_failing_rounds_make_it_not_ready_at_once_and_not_alive_past_the_bound(clock):
    status = WorkerStatus(stale_after_s=60, last_round=clock())
    status.round_failed("OperationalError: connection refused")
    status.beat()
    assert status.liveness_problem() is None
    assert "last round failed: OperationalError: connection refused" in (status.readiness_problem() or "")
    for _ in range(7):  # the loop keeps beating, and every round keeps failing
        clock.now += 10
        status.round_failed("OperationalError: connection refused")
        status.beat()
    assert "has failed for 70 s" in (status.liveness_problem() or "")
    status.round_succeeded()
    assert status.liveness_problem() is None and status.readiness_problem() is None


def test_a_paused_loop_is_alive_but_not_ready(clock):
    status = WorkerStatus(stale_after_s=60, last_round=clock())
    status.pause("StreamAuthRejected: GetApp HTTP 401", kind="conversation.provision", message_id=1)
    try:
        assert status.liveness_problem() is None
        assert "worker paused" in (status.readiness_problem() or "")
    finally:
        status.resume()
