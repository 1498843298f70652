"""Stream's rate limits, enforced when switched on: per minute, and per second at limit / 30."""

from __future__ import annotations

import httpx
import jwt
import pytest
from stream_chat.base.exceptions import StreamAPIException

from stream_emulator import clock
from stream_emulator.operations import RATE_LIMITS

from .conftest import KEY, SECRET

NOON = 1_800_000_000 // 60 * 60  # a minute boundary
_HTTP: httpx.Client


class Wall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> Wall:
    fake = Wall(NOON)
    monkeypatch.setattr(clock, "wall", fake)
    return fake


@pytest.fixture
def limited(emu):
    emu.rate_limiter.enabled = True
    yield emu
    emu.rate_limiter.enabled = False


@pytest.fixture(scope="module", autouse=True)
def _http():
    global _HTTP
    with httpx.Client() as _HTTP:
        yield


def _update_app(base_url: str) -> httpx.Response:
    token = jwt.encode({"server": True}, SECRET, algorithm="HS256")
    return _HTTP.patch(
        f"{base_url}/app",
        params={"api_key": KEY},
        json={"sqs_url": ""},
        headers={"Authorization": token, "stream-auth-type": "jwt"},
    )


def test_the_documented_limits_of_the_issue(limited):
    assert RATE_LIMITS["GetApp"] == 10000 and RATE_LIMITS["MarkRead"] == 10000
    assert RATE_LIMITS["UpdateApp"] == 60 and RATE_LIMITS["ReactivateUser"] == 60


def test_per_second_limit_is_a_thirtieth(limited, base_url, wall):
    assert [_update_app(base_url).status_code for _ in range(2)] == [200, 200]
    refused = _update_app(base_url)
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == 9 and body["StatusCode"] == 429
    assert body["message"] == (
        'UpdateApp failed with error: "Too many requests, check response headers for more information."'
    )
    assert refused.headers["x-ratelimit-limit"] == "60"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == str(NOON + 1)
    wall.now += 1
    assert _update_app(base_url).status_code == 200


def test_per_minute_limit(limited, base_url, wall):
    for second in range(30):
        wall.now = NOON + second
        assert [_update_app(base_url).status_code for _ in range(2)] == [200, 200]
    wall.now = NOON + 45
    refused = _update_app(base_url)
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-reset"] == str(NOON + 60)
    wall.now = NOON + 60
    assert _update_app(base_url).status_code == 200


def test_the_sdk_sees_429_and_nothing_changes(limited, sc, wall):
    sc.upsert_users([{"id": f"u{i}"} for i in range(3)])
    for _ in range(9):
        sc.upsert_user({"id": "u0", "name": "x"})
    with pytest.raises(StreamAPIException) as caught:  # UpdateUsers: 300 / 30 = 10 a second
        sc.upsert_user({"id": "late"})
    assert caught.value.status_code == 429 and caught.value.error_code == 9
    assert "late" not in limited.user_ids()


def test_off_by_default_only_announced(emu, base_url, wall):
    assert not emu.rate_limiter.enabled
    answers = [_update_app(base_url) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert answers[-1].headers["x-ratelimit-remaining"] == "55"
