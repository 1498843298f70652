"""A large group's member additions: turns on the UpdateChannel pacer within the deadline, and the per-channel memory
of what Stream accepted (sync/member_adds.py). Time is a fake clock; no Stream call is made."""

from __future__ import annotations

import pytest

from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.errors import DeadlineExceeded
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.member_adds import MemberProgress
from onecrew_chat.sync.pacing import Pacer, take_turn


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def setup(deadline_s: float) -> tuple[Clock, Pacer, Deadline]:
    clock = Clock()
    stream = StreamGateway("key", "secret", "http://127.0.0.1:9")
    pacer = Pacer(stream, "UpdateChannel", window_s=1.0, clock=clock, wall=lambda: 1_700_000_000.0 + clock.now)
    return clock, pacer, Deadline(deadline_s, clock=clock, sleep=clock.sleep)


async def test_turns_come_ten_a_second_and_a_run_waits_for_the_next_within_its_deadline():
    clock, pacer, deadline = setup(3.0)
    for _ in range(10):
        await take_turn(pacer, deadline)
    assert clock.slept == []
    await take_turn(pacer, deadline)  # the eleventh waits for the next second
    assert clock.slept and sum(clock.slept) <= 1.0


async def test_a_turn_after_the_deadline_is_not_waited_for():
    clock, pacer, deadline = setup(0.5)
    for _ in range(10):
        await take_turn(pacer, deadline)
    with pytest.raises(DeadlineExceeded) as raised:
        await take_turn(pacer, deadline)
    assert raised.value.operation == "UpdateChannel"
    assert clock.slept == []  # gave up at once, leaving the turn to a run with time for it


def test_progress_remembers_accepted_members_per_channel_until_forgotten_and_only_so_many_channels():
    progress = MemberProgress(limit=2)
    progress.accepted("messaging:a", ["u1", "u2"])
    progress.accepted("messaging:a", ["u3"])
    assert progress.added("messaging:a") == {"u1", "u2", "u3"}
    progress.forget("messaging:a")
    assert progress.added("messaging:a") == set()
    for cid in ("messaging:b", "messaging:c", "messaging:d"):
        progress.accepted(cid, ["u1"])
    assert progress.added("messaging:b") == set()  # the oldest is forgotten first
    assert progress.added("messaging:d") == {"u1"}
