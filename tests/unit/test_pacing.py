"""Pacing UpdateUsers by Stream's limits: the per-second share, the minute's remaining calls, a 429's reset."""

from __future__ import annotations

from datetime import UTC, datetime

from getstream.rate_limit import RateLimitInfo

from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.sync.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pacer(clock: Clock, wall: float = 1_700_000_000.0) -> tuple[Pacer, StreamGateway]:
    stream = StreamGateway("key", "secret", "http://127.0.0.1:9")
    return Pacer(stream, "UpdateUsers", window_s=1.0, clock=clock, wall=lambda: wall + clock.now), stream


def test_at_most_a_thirtieth_of_the_minutes_limit_is_sent_in_any_second():
    clock = Clock()
    pace, _ = pacer(clock)
    for _ in range(10):  # Stream's default 300 a minute: 10 a second
        assert pace.wait_s() == 0
        pace.started()
        clock.now += 0.01
    assert 0.8 < pace.wait_s() <= 0.91
    clock.now += 0.91
    assert pace.wait_s() == 0


def test_no_call_while_the_minutes_remaining_calls_are_spent_until_the_reset():
    clock = Clock()
    pace, stream = pacer(clock)
    reset = datetime.fromtimestamp(1_700_000_000.0 + clock.now + 20, UTC)
    stream.rate_limits["UpdateUsers"] = RateLimitInfo(limit=300, remaining=1, reset=reset)
    assert pace.wait_s() == 0
    pace.started()  # the last call the minute allows, not answered yet
    assert 19 < pace.wait_s() <= 20
    clock.now += 20.5
    assert pace.wait_s() == 0


def test_a_refusal_holds_calls_until_its_reset():
    clock = Clock()
    pace, _ = pacer(clock)
    pace.refused(0.4)
    assert 0.39 < pace.wait_s() <= 0.4
    pace.refused(None)  # no reset named: Stream's per-second window
    assert 0.99 < pace.wait_s() <= 1.0
