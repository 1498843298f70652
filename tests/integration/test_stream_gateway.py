"""StreamGateway against the emulator over loopback HTTP: every operation, every fault class, and the retry policy."""

from __future__ import annotations

import socket
import time

import jwt
import pytest
from getstream import AsyncStream
from getstream.exceptions import StreamApiException

from onecrew_chat import metrics
from onecrew_chat.stream.client import StreamGateway, StreamUser
from onecrew_chat.stream.errors import (
    DeadlineExceeded,
    StreamAuthRejected,
    StreamBatchError,
    StreamRateLimited,
    StreamRequestError,
    StreamUnavailable,
    StreamUsersMissing,
)
from onecrew_chat.stream.retry import RetryPolicy
from tests.support import STREAM_KEY, STREAM_SECRET

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture
async def gateway(emulator, emulator_server):
    """A gateway on the emulator with a per-request timeout no healthy call meets, even on a loaded machine."""
    gw = StreamGateway(STREAM_KEY, STREAM_SECRET, emulator_server.base_url, timeout_s=PATIENT_S)
    yield gw
    await gw.close()


PATIENT_S = 10.0


@pytest.fixture
async def impatient(emulator, emulator_server):
    """A gateway with a 1 s timeout, for the calls a test makes Stream hold far longer."""
    gw = StreamGateway(STREAM_KEY, STREAM_SECRET, emulator_server.base_url, timeout_s=1.0)
    yield gw
    await gw.close()


def user(uid: str, name: str = "Someone", **custom) -> StreamUser:
    return StreamUser(id=uid, name=name, image=None, custom={"onecrew_kind": "user", **custom})


async def test_upsert_then_query_user_ids(gateway, emulator):
    await gateway.upsert_users(
        [
            user("onecrew_user_a", "Amr"),
            StreamUser("onecrew_company_b", "Sat Education", "https://x/logo.png", {"onecrew_kind": "company"}),
        ]
    )
    stored = emulator.get_user("onecrew_company_b")
    assert (stored["role"], stored["name"], stored["image"], stored["onecrew_kind"]) == (
        "user",
        "Sat Education",
        "https://x/logo.png",
        "company",
    )
    assert emulator.get_user("onecrew_user_a")["role"] == "user"
    found = await gateway.query_user_ids(["onecrew_user_a", "onecrew_company_b", "onecrew_user_ghost"])
    assert found == {"onecrew_user_a", "onecrew_company_b"}
    assert emulator.count("UpdateUsers") == 1 and emulator.count("QueryUsers") == 1
    assert gateway.calls == 2


async def test_query_user_ids_chunks_by_a_hundred(gateway, emulator):
    ids = [f"u{n}" for n in range(150)]
    await gateway.upsert_users([user(uid) for uid in ids[:100]])
    await gateway.upsert_users([user(uid) for uid in ids[100:120]])
    assert await gateway.query_user_ids(ids) == set(ids[:120])
    assert emulator.count("QueryUsers") == 2
    assert await gateway.query_user_ids([]) == set()


async def test_batches_over_a_hundred_are_refused_before_any_call(gateway, emulator):
    with pytest.raises(ValueError):
        await gateway.upsert_users([user(f"u{n}") for n in range(101)])
    with pytest.raises(ValueError):
        await gateway.get_or_create_channel(
            "messaging", "big", created_by_id="u0", member_ids=[f"u{n}" for n in range(101)]
        )
    with pytest.raises(ValueError):
        await gateway.add_members("messaging", "big", [f"u{n}" for n in range(101)])
    assert emulator.count() == 0 and gateway.calls == 0


async def test_there_is_no_way_to_send_a_role(gateway, emulator):
    with pytest.raises(TypeError):
        StreamUser("u1", "A", None, {}, "admin")  # no role field at all
    with pytest.raises(ValueError):
        await gateway.upsert_users([user("u1", role="admin")])
    await gateway.upsert_users([user("u1")])
    with pytest.raises(ValueError):
        await gateway.partial_update_users([("u1", {"role": "admin"}, [])])
    with pytest.raises(ValueError):
        await gateway.partial_update_users([("u1", {}, ["role"])])
    assert emulator.get_user("u1")["role"] == "user"


async def test_a_refused_batch_names_the_bad_id_and_creates_nobody(gateway, emulator):
    with pytest.raises(StreamBatchError) as caught:
        await gateway.upsert_users([user("good_one"), user("bad id!")])
    assert caught.value.bad_id == "bad id!"
    assert (caught.value.status, caught.value.code) == (400, 4)
    assert emulator.get_user("good_one") is None


async def test_partial_update(gateway, emulator):
    await gateway.upsert_users([user("u1", "Old")])
    await gateway.partial_update_users([("u1", {"name": "New", "custom": {"onecrew_kind": "user"}}, [])])
    assert emulator.get_user("u1")["name"] == "New"
    assert emulator.count("UpdateUsersPartial") == 1


async def test_get_or_create_with_members_returns_streams_members(gateway, emulator):
    await gateway.upsert_users([user("a"), user("b"), user("c")])
    state = await gateway.get_or_create_channel(
        "messaging", "user_user-abc", created_by_id="a", member_ids=["a", "b", "a"], custom={"name": "Pair"}
    )
    assert (state.channel_type, state.channel_id) == ("messaging", "user_user-abc")
    assert state.cid == "messaging:user_user-abc"
    assert sorted(state.member_ids) == ["a", "b"]
    assert state.member_count == 2
    stored = emulator.get_channel("messaging", "user_user-abc")
    assert stored["created_by_id"] == "a" and sorted(stored["members"]) == ["a", "b"]

    again = await gateway.get_or_create_channel("messaging", "user_user-abc", created_by_id="a", member_ids=["a", "b"])
    assert sorted(again.member_ids) == ["a", "b"]
    assert emulator.count("GetOrCreateChannel") == 2 and emulator.channel_count() == 1

    await gateway.add_members("messaging", "user_user-abc", ["c", "b"])
    present = await gateway.get_channel("messaging", "user_user-abc")
    assert sorted(present.member_ids) == ["a", "b", "c"]
    assert await gateway.get_channel("messaging", "nothing-here") is None
    assert emulator.count("UpdateChannel") == 1 and emulator.count("QueryChannels") == 2


async def test_missing_users_are_named(gateway, emulator):
    await gateway.upsert_users([user("a")])
    with pytest.raises(StreamUsersMissing) as created:
        await gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a", "ghost1", "ghost2"])
    assert created.value.missing_ids == ["ghost1", "ghost2"]
    assert (created.value.operation, created.value.status, created.value.code) == ("GetOrCreateChannel", 400, 4)
    await gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a"])
    with pytest.raises(StreamUsersMissing) as added:
        await gateway.add_members("messaging", "c1", ["ghost3"])
    assert added.value.missing_ids == ["ghost3"] and added.value.operation == "UpdateChannel"


async def test_retry_policy_repairs_exactly_the_missing_ids(gateway, emulator):
    await gateway.upsert_users([user("a")])
    repaired: list[list[str]] = []

    async def repair(ids: list[str]) -> None:
        repaired.append(ids)
        await gateway.upsert_users([user(uid) for uid in ids])

    state = await RetryPolicy(3.0).run(
        lambda: gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a", "b", "c"]),
        repair=repair,
        name="GetOrCreateChannel",
    )
    assert repaired == [["b", "c"]]
    assert sorted(state.member_ids) == ["a", "b", "c"]
    assert emulator.count("GetOrCreateChannel") == 2 and emulator.count("UpdateUsers") == 2


async def test_server_errors_are_unavailable_and_retried_until_the_deadline(gateway, emulator):
    await gateway.upsert_users([user("a")])
    emulator.faults.set_error_rate("GetOrCreateChannel", 1.0, status=503)
    before = metrics.STREAM_CALLS.labels("GetOrCreateChannel", "unavailable")._value.get()
    with pytest.raises(StreamUnavailable) as caught:
        await gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a"])
    assert caught.value.status == 503
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as gave_up:
        await RetryPolicy(2.0).run(
            lambda: gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a"]),
            name="GetOrCreateChannel",
        )
    assert time.monotonic() - started < 30.0  # Stream stays down: only the 2 s deadline ends the retries
    assert isinstance(gave_up.value.__cause__, StreamUnavailable)
    assert emulator.count("GetOrCreateChannel") >= 3
    assert metrics.STREAM_CALLS.labels("GetOrCreateChannel", "unavailable")._value.get() - before >= 3
    assert emulator.get_channel("messaging", "c1") is None


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_gateways_5xx_in_its_own_words_is_unavailable_and_retried(gateway, emulator, status):
    await gateway.upsert_users([user("a")])
    emulator.faults.set_error_rate("GetOrCreateChannel", 1.0, status=status, body={"message": "Bad Gateway"})
    with pytest.raises(StreamUnavailable) as caught:
        await gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a"])
    assert caught.value.status == status and "Bad Gateway" in str(caught.value)
    emulator.faults._random.seed(5)  # deterministic draws: some calls fail, the policy retries until one passes
    emulator.faults.set_error_rate("GetOrCreateChannel", 0.5, status=status, body={"message": "Bad Gateway"})
    state = await RetryPolicy(10.0).run(
        lambda: gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a"]),
        name="GetOrCreateChannel",
    )
    assert state.member_ids == ["a"]
    assert any(r.operation == "GetOrCreateChannel" and r.status == status for r in emulator.requests)


async def test_a_429_burst_carries_the_reset_and_the_policy_waits_for_it(gateway, emulator):
    await gateway.upsert_users([user("a")])
    emulator.faults.rate_limit_burst("GetOrCreateChannel", count=1, reset_in_s=0.2)
    with pytest.raises(StreamRateLimited) as caught:
        await gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a"])
    now = time.time()
    assert caught.value.status == 429 and caught.value.code == 9
    assert now - PATIENT_S - 1 < caught.value.reset_at <= now + 1.3  # the call (up to PATIENT_S) began before now
    assert 0 <= caught.value.retry_after_s <= 1.3

    emulator.faults.rate_limit_burst("GetOrCreateChannel", count=1, reset_in_s=0.2)
    state = await RetryPolicy(3.0).run(
        lambda: gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a"]),
        name="GetOrCreateChannel",
    )
    assert state.member_ids == ["a"]
    assert time.time() >= caught.value.reset_at - 1  # it did not hammer Stream before the reset

    emulator.faults.rate_limit_burst("GetOrCreateChannel", count=1, reset_in_s=120)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await RetryPolicy(60.0).run(
            lambda: gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a"]),
            name="GetOrCreateChannel",
        )
    assert time.monotonic() - started < 30.0  # a reset beyond the 60 s deadline is not waited for at all


async def test_success_records_the_remaining_rate_limit(gateway, emulator):
    await gateway.ping()
    assert metrics.STREAM_RATE_LIMIT_REMAINING.labels("GetApp")._value.get() > 0


async def test_latency_beyond_the_timeout_is_unavailable(gateway, impatient, emulator):
    emulator.faults.set_latency(60_000)
    started = time.monotonic()
    with pytest.raises(StreamUnavailable) as caught:
        await impatient.ping()
    assert time.monotonic() - started < 30.0  # the 1 s timeout ended it, not Stream's 60 s answer
    assert "timeout" in caught.value.message
    emulator.faults.set_latency(50)
    await gateway.ping()


async def test_a_timeout_after_the_write_is_unavailable_and_safe_to_repeat(gateway, impatient, emulator):
    await gateway.upsert_users([user("a"), user("b")])
    emulator.faults.timeout_after_write("GetOrCreateChannel", count=1, hold_s=120)
    with pytest.raises(StreamUnavailable):
        await impatient.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a", "b"])
    assert sorted(emulator.get_channel("messaging", "c1")["members"]) == ["a", "b"]  # the write happened
    state = await gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a", "b"])
    assert sorted(state.member_ids) == ["a", "b"] and emulator.channel_count() == 1


async def test_a_wrong_secret_fails_fast_with_streams_code(emulator, emulator_server):
    gw = StreamGateway(STREAM_KEY, "not-the-secret-0123456789abcdef0123", emulator_server.base_url, timeout_s=PATIENT_S)
    try:
        with pytest.raises(StreamRequestError) as caught:
            await gw.ping()
        assert (caught.value.status, caught.value.code) == (401, 43)
        assert "signature is not valid" in caught.value.message
        assert isinstance(caught.value, StreamAuthRejected)
        with pytest.raises(StreamRequestError):
            await RetryPolicy(3.0).run(gw.ping, name="GetApp")
        assert emulator.count("GetApp") == 2  # one call each: no retries on a 401
    finally:
        await gw.close()


async def test_a_wrong_api_key_fails_fast(emulator, emulator_server):
    gw = StreamGateway("wrong-key", STREAM_SECRET, emulator_server.base_url, timeout_s=PATIENT_S)
    try:
        with pytest.raises(StreamRequestError) as caught:
            await gw.ping()
        assert (caught.value.status, caught.value.code) == (401, 2)
    finally:
        await gw.close()


async def test_missing_credentials_fail_without_a_call():
    gw = StreamGateway("", "", "http://127.0.0.1:9", timeout_s=0.5)
    with pytest.raises(StreamRequestError):
        await gw.ping()
    assert gw.calls == 0
    await gw.close()


async def test_nothing_listening_is_unavailable():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but never listening: connections are refused
        gw = StreamGateway(STREAM_KEY, STREAM_SECRET, f"http://127.0.0.1:{port}", timeout_s=0.5)
        try:
            with pytest.raises(StreamUnavailable) as caught:
                await gw.ping()
            assert caught.value.status is None
        finally:
            await gw.close()


async def test_update_app_settings_sets_the_webhook(gateway, emulator):
    await gateway.update_app_settings(webhook_url="http://127.0.0.1:8000/api/chat/webhooks/stream")
    assert emulator.state.app["webhook_url"] == "http://127.0.0.1:8000/api/chat/webhooks/stream"
    await gateway.update_app_settings(webhook_url=None)
    assert emulator.state.app["webhook_url"] == ""


async def test_user_token_has_user_id_iat_exp_and_is_accepted(gateway, emulator, emulator_server):
    await gateway.upsert_users([user("a"), user("b")])
    await gateway.get_or_create_channel("messaging", "c1", created_by_id="a", member_ids=["a", "b"])
    before = int(time.time())
    token = gateway.create_user_token("a", 3600)
    claims = jwt.decode(token, STREAM_SECRET, algorithms=["HS256"])
    assert claims["user_id"] == "a"
    assert before - 10 <= claims["iat"] <= before + 1
    assert before + 3600 <= claims["exp"] <= before + 3602
    assert emulator.count() == 2  # minting a token is local

    as_user = AsyncStream(api_key=STREAM_KEY, token=token, base_url=emulator_server.base_url, timeout=10)
    expired = AsyncStream(
        api_key=STREAM_KEY, token=gateway.create_user_token("a", -60), base_url=emulator_server.base_url, timeout=10
    )
    try:
        response = await as_user.chat.query_channels(filter_conditions={"members": {"$in": ["a"]}})
        assert [state.channel.id for state in response.data.channels] == ["c1"]
        with pytest.raises(StreamApiException) as rejected:
            await expired.chat.query_channels(filter_conditions={"members": {"$in": ["a"]}})
        assert (rejected.value.status_code, rejected.value.code) == (401, 40)
    finally:
        await as_user.aclose()
        await expired.aclose()
