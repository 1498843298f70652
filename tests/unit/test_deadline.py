"""Deadline: one budget across several Stream calls, on a fake clock (no real waiting)."""

from __future__ import annotations

import pytest

from onecrew_chat.stream.errors import DeadlineExceeded, StreamUnavailable
from onecrew_chat.sync.deadline import Deadline


class FakeClock:
    """Time that moves only when told (sleeps advance it)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_each_call_gets_what_is_left_and_then_nothing():
    clock = FakeClock()
    deadline = Deadline(1.0, clock=clock, sleep=clock.sleep, rng=lambda: 1.0)

    async def slow_ok():
        clock.now += 0.6
        return "ok"

    assert await deadline.run(slow_ok, name="First") == "ok"
    assert deadline.remaining_s() == pytest.approx(0.4)
    failures = []

    async def down():
        failures.append(clock.now)
        raise StreamUnavailable("503", operation="Second", status=503)

    with pytest.raises(DeadlineExceeded):
        await deadline.run(down, name="Second")
    assert len(failures) == 4 and clock.now <= 101.0, "no wait that would end past the shared deadline"
    clock.now = 101.0
    assert deadline.remaining_s() == 0
    with pytest.raises(DeadlineExceeded):
        await deadline.run(slow_ok, name="Third")


async def test_poll_waits_with_short_jittered_waits_until_the_condition_holds():
    clock = FakeClock()
    deadline = Deadline(1.0, clock=clock, sleep=clock.sleep, rng=lambda: 1.0)
    answers = iter([None, None, None, "locked"])

    async def attempt():
        return next(answers)

    assert await deadline.poll(attempt, name="LockConversation") == "locked"
    assert clock.now == pytest.approx(100.0 + 0.05 + 0.1 + 0.1), "backoff capped at POLL_CAP_S"


async def test_poll_gives_up_at_the_deadline_without_a_pointless_wait():
    clock = FakeClock()
    deadline = Deadline(0.3, clock=clock, sleep=clock.sleep, rng=lambda: 1.0)
    calls = []

    async def never():
        calls.append(clock.now)

    with pytest.raises(DeadlineExceeded) as caught:
        await deadline.poll(never, name="LockConversation")
    assert caught.value.operation == "LockConversation"
    assert clock.now <= 100.3 and len(calls) == 4  # at 0, 0.05, 0.15, 0.25; a wait to 0.35 is not taken


def test_one_budget_is_shared_by_every_run():
    clock = FakeClock()
    deadline = Deadline(1.0, clock=clock)
    clock.now += 0.25
    assert deadline.remaining_s() == pytest.approx(0.75)
    clock.now += 5
    assert deadline.remaining_s() == 0
