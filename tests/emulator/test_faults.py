"""Every fault, set from Python: latency, 5xx rates, 429 bursts, timeout after write,
visibility delay, and reset."""

from __future__ import annotations

import time

import httpx
import pytest
import requests
from getstream import Stream
from getstream.base import StreamApiException
from getstream.exceptions import StreamRateLimitException, StreamTransportException
from getstream.models import ChannelInput, ChannelMemberRequest, UserRequest
from stream_chat import StreamChat
from stream_chat.base.exceptions import StreamAPIException

from stream_emulator import clock, create_app
from stream_emulator import operations as op

from .conftest import KEY, SECRET


def wait_until(predicate, timeout: float = 30.0) -> None:
    """Wait for a condition another thread makes true, failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_latency_delays_every_response(sc, emu):
    emu.faults.set_latency(120)
    started = time.monotonic()
    sc.upsert_user({"id": "slow"})
    assert time.monotonic() - started >= 0.12
    assert emu.requests[-1].duration_ms >= 120
    emu.faults.set_latency(0, jitter_ms=40)
    sc.upsert_user({"id": "jittery"})
    assert 0 <= emu.requests[-1].duration_ms < 30_000  # jitter adds up to 40 ms (and a loaded machine more)


def test_error_rate_one_fails_every_call_of_that_operation_only(gs, sc, emu):
    emu.faults.set_error_rate(op.UPDATE_USERS, 1.0, status=503)
    with pytest.raises(StreamApiException) as caught:
        gs.upsert_users(UserRequest(id="never"))
    assert caught.value.status_code == 503 and caught.value.code == -1
    assert "UpdateUsers failed with error" in caught.value.message
    assert emu.user_ids() == set()
    assert gs.get_app().status_code() == 200
    emu.faults.set_error_rate("*", 1.0)
    with pytest.raises(StreamAPIException) as everything:
        sc.get_app_settings()
    assert everything.value.status_code == 500


async def test_error_rate_is_a_share_of_calls():
    app = create_app(api_key=KEY, api_secret=SECRET)
    app.state.emulator.faults.set_error_rate(op.GET_APP, 0.5)
    token = StreamChat(KEY, SECRET).auth_token
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as client:
        statuses = [
            (
                await client.get(
                    "/app", params={"api_key": KEY}, headers={"Authorization": token, "stream-auth-type": "jwt"}
                )
            ).status_code
            for _ in range(400)
        ]
    assert 120 < statuses.count(500) < 280 and statuses.count(500) + statuses.count(200) == 400


def test_rate_limit_burst_then_recovery(gs, sc, emu):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}])
    emu.faults.rate_limit_burst(op.GET_OR_CREATE_CHANNEL, count=2, reset_in_s=30)
    channel = gs.chat.channel("messaging", "limited")
    data = ChannelInput(created_by_id="ann", members=[ChannelMemberRequest(user_id="bob")])
    for _ in range(2):
        with pytest.raises(StreamRateLimitException) as caught:
            channel.get_or_create(data=data)
        assert caught.value.status_code == 429 and caught.value.code == 9
        limits = caught.value.rate_limit_info
        assert limits.remaining == 0
        assert 25 <= limits.reset.timestamp() - time.time() <= 31
    assert emu.get_channel("messaging", "limited") is None
    assert channel.get_or_create(data=data).status_code() == 201
    assert [r.status for r in emu.requests if r.operation == op.GET_OR_CREATE_CHANNEL] == [429, 429, 201]


def test_timeout_after_write_applies_the_write_and_never_answers(base_url, emu, sc):
    emu.faults.timeout_after_write(op.UPDATE_USERS, count=1, hold_s=10)
    impatient = StreamChat(KEY, SECRET, base_url=base_url, timeout=0.3)
    with pytest.raises(requests.exceptions.RequestException):
        impatient.upsert_user({"id": "written"})
    assert emu.get_user("written") is not None
    # The client hung up, so the held call ends and is logged without a status.
    wait_until(lambda: emu.count(op.UPDATE_USERS) == 1)
    assert emu.requests[-1].status == 0
    assert sc.upsert_user({"id": "second"})["users"]["second"]  # count=1 was used up


def test_timeout_after_write_with_getstream(base_url, emu):
    emu.faults.timeout_after_write("*", count=1, hold_s=10)
    client = Stream(api_key=KEY, api_secret=SECRET, base_url=base_url, timeout=0.3)
    with pytest.raises(StreamTransportException) as caught:
        client.upsert_users(UserRequest(id="held"))
    assert caught.value.error_type == "timeout"
    assert emu.get_user("held") is not None
    client.close()


@pytest.fixture
def fake_clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])
    return now


def test_visibility_delay_hides_new_users_from_create_and_add(sc, emu, fake_clock):
    sc.upsert_users([{"id": "old1"}, {"id": "old2"}])
    fake_clock[0] += 10
    emu.faults.set_visibility_delay(300)
    sc.upsert_users([{"id": "new1"}, {"id": "new2"}])
    with pytest.raises(StreamAPIException) as create:
        sc.channel("messaging", "vis", {"members": ["old2", "new1", "new2"]}).create("old1")
    assert "but don't exist: [new1,new2]" in create.value.error_message
    sc.channel("messaging", "vis", {"members": ["old2"]}).create("old1")
    with pytest.raises(StreamAPIException) as add:
        sc.channel("messaging", "vis").add_members(["new1"])
    assert "channel update operation, but don't exist: [new1]" in add.value.error_message
    fake_clock[0] += 0.2
    sc.upsert_user({"id": "new1", "name": "again"})  # re-upserting does not restart the clock
    fake_clock[0] += 0.15
    assert len(sc.channel("messaging", "vis").add_members(["new1"])["members"]) == 2


def test_faults_reset_and_emulator_reset(sc, emu):
    emu.faults.set_error_rate("*", 1.0)
    emu.faults.set_latency(50)
    emu.faults.set_visibility_delay(1000)
    emu.faults.rate_limit_burst("*", 5, 10)
    emu.faults.timeout_after_write("*", 3)
    assert len(emu.faults.describe()) == 5
    emu.faults.reset()
    assert emu.faults.describe() == []
    sc.upsert_user({"id": "kept"})
    assert emu.count() == 1
    emu.reset()
    assert emu.user_ids() == set() and emu.count() == 0 and emu.requests == []


def test_a_call_in_flight_during_a_reset_is_neither_applied_nor_logged(emu, sc):
    """A client that gave up on a slow answer must not leak that call into the next test's state or log."""
    import threading

    emu.faults.set_latency(300)
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(_attempt(lambda: sc.upsert_user({"id": "late"}))))
    thread.start()
    deadline = time.monotonic() + 30
    while emu.in_flight == 0:  # the upsert is now sleeping in its injected latency
        assert time.monotonic() < deadline, "the call never reached the emulator"
    emu.reset()
    thread.join(timeout=10)
    assert emu.get_user("late") is None
    assert emu.count() == 0
    assert isinstance(outcome[0], StreamAPIException) and outcome[0].status_code == 503
    deadline = time.monotonic() + 30
    while emu.in_flight:  # the server leaves the call just after the client has its answer
        assert time.monotonic() < deadline, "the call never left the emulator"


def _attempt(call):
    try:
        return call()
    except Exception as exc:  # the stale call is refused: that is the point
        return exc
