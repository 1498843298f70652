"""The emulator's webhook retry schedule against Stream's documented limits, on a simulated clock.

Stream's docs (Push webhook, "Performance and Error Handling"): 3 attempts for a 408/429/5xx answer or a timed-out
request, 2 for a network error; one request may take 6 s and the request with all its retries at most 15 s.
"""

from stream_emulator.webhooks import RetryPolicy, next_pause


def _tries(policy: RetryPolicy, each_try_s: float, *, network: bool = False) -> list[float]:
    """The start times of the tries a receiver gets when every try fails after `each_try_s` (capped by the try
    timeout and by what is left of the total), on a simulated clock."""
    clock, starts, attempt = 0.0, [], 0
    while True:
        attempt += 1
        starts.append(clock)
        clock += min(each_try_s, policy.try_timeout_s, policy.total_s - clock)
        pause = next_pause(policy, attempt, clock, network=network)
        if pause is None:
            return starts
        clock += pause


def test_a_receiver_slower_than_the_try_timeout_gets_three_tries_within_fifteen_seconds() -> None:
    starts = _tries(RetryPolicy(), each_try_s=60.0)
    assert len(starts) == 3
    assert starts[-1] < 15.0


def test_a_failing_answer_gets_three_tries_and_a_network_error_two() -> None:
    assert len(_tries(RetryPolicy(), each_try_s=0.05)) == 3
    assert len(_tries(RetryPolicy(), each_try_s=0.05, network=True)) == 2


def test_no_try_starts_after_the_total_budget() -> None:
    policy = RetryPolicy(status_attempts=10)
    starts = _tries(policy, each_try_s=6.0)
    assert all(start < policy.total_s for start in starts)
