"""RetryPolicy on a fake clock: the waits it chooses, where the deadline cuts it off, and what it never retries."""

from __future__ import annotations

import pytest

from onecrew_chat import metrics
from onecrew_chat.stream.errors import (
    DeadlineExceeded,
    StreamBatchError,
    StreamRateLimited,
    StreamRequestError,
    StreamUnavailable,
    StreamUsersMissing,
)
from onecrew_chat.stream.retry import RetryPolicy

OP = "GetOrCreateChannel"


class FakeTime:
    """A clock that only moves when the policy sleeps; records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.now += seconds


class Script:
    """An operation that raises or returns the given outcomes in order, counting calls."""

    def __init__(self, *outcomes, cost_s: float = 0.0, time: FakeTime | None = None) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.cost_s = cost_s
        self.time = time

    async def __call__(self):
        self.calls += 1
        if self.time is not None:
            self.time.now += self.cost_s
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def unavailable() -> StreamUnavailable:
    return StreamUnavailable("HTTP 503", operation=OP, status=503, code=-1)


def policy(t: FakeTime, deadline_s: float = 3.0, rng: float = 1.0, **kwargs) -> RetryPolicy:
    return RetryPolicy(deadline_s, clock=t.clock, rng=lambda: rng, sleep=t.sleep, **kwargs)


async def test_success_needs_no_wait():
    t = FakeTime()
    op = Script("ok")
    assert await policy(t).run(op, name=OP) == "ok"
    assert op.calls == 1 and t.waits == []


async def test_unavailable_backs_off_exponentially_up_to_the_cap():
    t = FakeTime()
    op = Script(*[unavailable()] * 7, "ok")
    before = metrics.STREAM_RETRIES.labels(OP, "unavailable")._value.get()
    assert await policy(t, deadline_s=10).run(op, name=OP) == "ok"
    # rng() == 1 shows the ceilings: base 50 ms doubling, capped at 1 s
    assert t.waits == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert metrics.STREAM_RETRIES.labels(OP, "unavailable")._value.get() - before == 7


async def test_full_jitter_scales_the_ceiling():
    t = FakeTime()
    op = Script(unavailable(), unavailable(), unavailable(), "ok")
    await policy(t, rng=0.5).run(op, name=OP)
    assert t.waits == [0.025, 0.05, 0.1]


async def test_deadline_cuts_off_without_a_pointless_wait():
    t = FakeTime()
    op = Script(*[unavailable()] * 20)
    with pytest.raises(DeadlineExceeded) as caught:
        await policy(t, deadline_s=1.0).run(op, name=OP)
    # 0.05 + 0.1 + 0.2 + 0.4 = 0.75; the next wait (0.8) would end past the 1 s deadline, so it stops at once
    assert t.waits == [0.05, 0.1, 0.2, 0.4]
    assert op.calls == 5
    assert t.now - 1000.0 == pytest.approx(0.75)
    assert isinstance(caught.value.__cause__, StreamUnavailable)
    assert caught.value.status == 503 and caught.value.operation == OP


async def test_slow_calls_count_against_the_deadline():
    t = FakeTime()
    op = Script(*[unavailable()] * 10, cost_s=0.6, time=t)
    with pytest.raises(DeadlineExceeded):
        await policy(t, deadline_s=1.0).run(op, name=OP)
    assert op.calls == 2 and t.waits == [0.05]


async def test_rate_limit_waits_for_the_reset():
    t = FakeTime()
    limited = StreamRateLimited("429", operation=OP, status=429, code=9, reset_at=1e9, retry_after_s=0.7)
    op = Script(limited, "ok")
    before = metrics.STREAM_RETRIES.labels(OP, "rate_limited")._value.get()
    assert await policy(t, rng=0.0).run(op, name=OP) == "ok"
    assert t.waits == [0.7]
    assert metrics.STREAM_RETRIES.labels(OP, "rate_limited")._value.get() - before == 1


async def test_rate_limit_reset_gets_a_little_jitter():
    t = FakeTime()
    op = Script(StreamRateLimited("429", operation=OP, status=429, retry_after_s=0.7), "ok")
    await policy(t, rng=1.0).run(op, name=OP)
    assert t.waits == [0.75]


async def test_rate_limit_past_the_deadline_fails_at_once():
    t = FakeTime()
    op = Script(StreamRateLimited("429", operation=OP, status=429, code=9, retry_after_s=5.0), "ok")
    with pytest.raises(DeadlineExceeded) as caught:
        await policy(t, deadline_s=3.0).run(op, name=OP)
    assert t.waits == [] and op.calls == 1
    assert isinstance(caught.value.__cause__, StreamRateLimited)
    assert caught.value.retry_after_s == 5.0


async def test_rate_limit_without_reset_backs_off():
    t = FakeTime()
    op = Script(StreamRateLimited("429", operation=OP, status=429), StreamRateLimited("429", operation=OP), "ok")
    await policy(t).run(op, name=OP)
    assert t.waits == [0.05, 0.1]


async def test_missing_users_are_repaired_then_retried_at_once():
    t = FakeTime()
    repaired: list[list[str]] = []

    async def repair(ids: list[str]) -> None:
        repaired.append(ids)

    missing = StreamUsersMissing("don't exist", operation=OP, status=400, code=4, missing_ids=["u1", "u2"])
    op = Script(missing, "ok")
    before = metrics.STREAM_REPAIRS._value.get()
    assert await policy(t).run(op, repair=repair, name=OP) == "ok"
    assert repaired == [["u1", "u2"]]
    assert t.waits == []
    assert metrics.STREAM_REPAIRS._value.get() - before == 1


async def test_repeated_repairs_back_off_and_are_bounded():
    t = FakeTime()
    repaired: list[list[str]] = []

    async def repair(ids: list[str]) -> None:
        repaired.append(ids)

    def missing(user: str) -> StreamUsersMissing:
        return StreamUsersMissing("don't exist", operation=OP, status=400, code=4, missing_ids=[user])

    op = Script(missing("a"), missing("b"), missing("c"), missing("d"), "never")
    with pytest.raises(StreamUsersMissing) as caught:
        await policy(t, max_repairs=3).run(op, repair=repair, name=OP)
    assert repaired == [["a"], ["b"], ["c"]]
    assert caught.value.missing_ids == ["d"]
    assert t.waits == [0.05, 0.1]
    assert op.calls == 4


async def test_a_repair_that_hits_a_transient_error_is_waited_out():
    t = FakeTime()
    attempts: list[list[str]] = []

    async def repair(ids: list[str]) -> None:
        attempts.append(ids)
        if len(attempts) == 1:
            raise unavailable()

    def missing() -> StreamUsersMissing:
        return StreamUsersMissing("don't exist", operation=OP, status=400, code=4, missing_ids=["u1"])

    op = Script(missing(), missing(), "ok")
    assert await policy(t).run(op, repair=repair, name=OP) == "ok"
    assert attempts == [["u1"], ["u1"]]
    assert t.waits == [0.05, 0.1]  # after the failed repair, then after the second (successful) repair


async def test_a_repair_refused_by_stream_fails_fast():
    t = FakeTime()

    async def repair(ids: list[str]) -> None:
        raise StreamBatchError("bad user", operation="UpdateUsers", status=400, code=4, bad_id=ids[0])

    op = Script(StreamUsersMissing("x", operation=OP, missing_ids=["u1"]), "ok")
    with pytest.raises(StreamBatchError) as caught:
        await policy(t).run(op, repair=repair, name=OP)
    assert caught.value.bad_id == "u1" and op.calls == 1 and t.waits == []


async def test_missing_users_without_a_repair_fail_fast():
    t = FakeTime()
    op = Script(StreamUsersMissing("x", operation=OP, missing_ids=["a"]), "ok")
    with pytest.raises(StreamUsersMissing):
        await policy(t).run(op, name=OP)
    assert op.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        StreamRequestError("either data.created_by or data.created_by_id", operation=OP, status=400, code=4),
        StreamRequestError("JWTAuth error", operation=OP, status=401, code=43),
        StreamBatchError("bad user", operation="UpdateUsers", status=400, code=4, bad_id="u1"),
    ],
)
async def test_request_errors_fail_fast(error):
    t = FakeTime()
    op = Script(error, "ok")
    with pytest.raises(type(error)) as caught:
        await policy(t).run(op, name=OP)
    assert caught.value is error
    assert op.calls == 1 and t.waits == []


async def test_mixed_failures_share_one_backoff_sequence():
    t = FakeTime()

    async def repair(ids):
        return None

    op = Script(
        unavailable(),
        StreamUsersMissing("x", operation=OP, missing_ids=["a"]),
        unavailable(),
        "ok",
    )
    assert await policy(t).run(op, repair=repair, name=OP) == "ok"
    assert t.waits == [0.05, 0.1]


async def test_a_call_that_outlives_the_deadline_is_cut_off():
    import asyncio

    async def hangs():
        await asyncio.Event().wait()

    with pytest.raises(DeadlineExceeded) as caught:
        await RetryPolicy(0.05).run(hangs, name=OP)
    assert isinstance(caught.value.__cause__, StreamUnavailable)


def test_deadline_must_be_positive():
    with pytest.raises(ValueError):
        RetryPolicy(0)
