"""TokenVerifier remembers tokens that verified (auth.py): the same answers as verifying each time, exp still holds."""

from __future__ import annotations

import base64
import time

import jwt
import pytest

from onecrew_chat import auth as auth_module
from onecrew_chat.auth import TokenVerifier
from onecrew_chat.config import Settings
from onecrew_chat.errors import Unauthorized
from tests.support import JWT_SECRET, make_jwt, new_id, tampered_jwt


class Clock:
    """The verifier's clock, moved by hand (PyJWT keeps the real one)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(clock) -> TokenVerifier:
    return TokenVerifier(Settings(mode="development", jwt_secret=JWT_SECRET), clock=clock)


def test_a_remembered_token_stops_working_when_its_exp_passes(verifier, clock):
    user = new_id()
    token = make_jwt(user, exp_in=60)
    assert verifier.user_id(f"Bearer {token}") == user
    assert verifier.user_id(f"Bearer {token}") == user  # remembered
    clock.now += 59
    assert verifier.user_id(f"bearer  {token} ") == user
    clock.now += 1  # now == exp: PyJWT calls that expired too
    with pytest.raises(Unauthorized):
        verifier.user_id(f"Bearer {token}")


def test_refused_tokens_are_refused_every_time_and_never_remembered(verifier):
    user = new_id()
    forged = make_jwt(user, secret="not-the-secret-0123456789abcdef0123")
    expired = make_jwt(user, exp_in=-5)
    tampered = tampered_jwt(make_jwt(user))
    for token in (forged, expired, tampered, "not.a.jwt", make_jwt("not-a-uuid")):
        for _ in range(2):
            with pytest.raises(Unauthorized):
                verifier.user_id(f"Bearer {token}")
    assert verifier.user_id(f"Bearer {make_jwt(user)}") == user


def test_a_tampered_token_always_differs_in_its_signature_bytes(verifier):
    # About 1 token in 1,000 has a signature whose last two base64url characters already decode like "AA" (the
    # last one carries 2 unused bits): replacing them left a valid token. tampered_jwt flips a decoded bit.
    user = new_id()
    token = next(
        t
        for t in (make_jwt(user, n=n) for n in range(100_000))
        if _b64(t.rsplit(".", 1)[1][:-2] + "AA") == _b64(t.rsplit(".", 1)[1])
    )
    assert verifier.user_id(f"Bearer {token[:-2]}AA") == user  # the old tamper: still valid
    with pytest.raises(Unauthorized):
        verifier.user_id(f"Bearer {tampered_jwt(token)}")


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_token_signed_with_none_is_refused_even_after_its_twin_verified(verifier):
    user = new_id()
    good = make_jwt(user)
    assert verifier.user_id(f"Bearer {good}") == user
    unsigned = jwt.encode({"sub": user, "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(Unauthorized):
        verifier.user_id(f"Bearer {unsigned}")


def test_a_token_without_exp_is_remembered_without_one(verifier, clock):
    user = new_id()
    token = jwt.encode({"sub": user}, JWT_SECRET, algorithm="HS256")
    assert verifier.user_id(f"Bearer {token}") == user
    clock.now += 10 * 365 * 86400
    assert verifier.user_id(f"Bearer {token}") == user


def test_the_memory_is_bounded_and_forgets_the_least_recently_used(verifier, clock, monkeypatch):
    monkeypatch.setattr(auth_module, "VERIFIED_CACHE_SIZE", 2)
    users = [new_id() for _ in range(3)]
    tokens = [make_jwt(user) for user in users]
    assert verifier.user_id(f"Bearer {tokens[0]}") == users[0]
    assert verifier.user_id(f"Bearer {tokens[1]}") == users[1]
    assert verifier.user_id(f"Bearer {tokens[0]}") == users[0]  # tokens[0] used last: tokens[1] goes first
    assert verifier.user_id(f"Bearer {tokens[2]}") == users[2]
    clock.now += 7200  # past every exp by the verifier's clock, not by PyJWT's (real) one
    assert verifier.user_id(f"Bearer {tokens[1]}") == users[1]  # forgotten, so verified again (PyJWT: valid)
    with pytest.raises(Unauthorized):
        verifier.user_id(f"Bearer {tokens[2]}")  # remembered, and expired by the verifier's clock
