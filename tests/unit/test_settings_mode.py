"""The mode, and every setting that cannot work refused in one line that names it (issue 14, points 1 and 4)."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from onecrew_chat.auth import TokenVerifier, check_service_token
from onecrew_chat.cli.settings import settings_problems
from onecrew_chat.config import Mode, Settings, unknown_setting_warnings
from onecrew_chat.errors import Unauthorized
from tests.support import JWT_SECRET, SERVICE_TOKEN, STREAM_KEY, STREAM_SECRET, new_id

COMPLETE = {
    "DATABASE_URL": "postgresql://u:p@db.example/chat",
    "STREAM_API_KEY": STREAM_KEY,
    "STREAM_API_SECRET": STREAM_SECRET,
    "ONECREW_JWT_SECRET": JWT_SECRET,
    "ONECREW_SERVICE_TOKEN": SERVICE_TOKEN,
}

DEV = {"ONECREW_MODE": "development"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No setting leaks in from the shell that runs the tests."""
    import os

    for name in list(os.environ):
        if name.startswith(("ONECREW_", "STREAM_")) or name in ("DATABASE_URL", "PORT", "HOST"):
            monkeypatch.delenv(name)


def settings_from(monkeypatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def refused(monkeypatch, **env: str) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        settings_from(monkeypatch, **env)
    return settings_problems(raised.value)


def _pem(private) -> str:
    public = private.public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


RSA_PRIVATE = rsa.generate_private_key(65537, 2048)
EC_PRIVATE = ec.generate_private_key(ec.SECP256R1())


# --- the mode ---


def test_no_production_setting_is_development_with_every_fallback(monkeypatch):
    settings = settings_from(monkeypatch)
    assert settings.mode is Mode.DEVELOPMENT and settings.development
    assert settings.embedded_database and settings.embedded_stream


def test_every_production_setting_is_production(monkeypatch):
    settings = settings_from(monkeypatch, **COMPLETE)
    assert settings.mode is Mode.PRODUCTION and not settings.development
    assert not settings.embedded_database and not settings.embedded_stream


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        # The case: the production database, and the built-in emulator would have stood in for Stream.
        (
            {"DATABASE_URL": COMPLETE["DATABASE_URL"]},
            "STREAM_API_KEY, STREAM_API_SECRET, ONECREW_JWT_SECRET (or ONECREW_JWT_PUBLIC_KEY), ONECREW_SERVICE_TOKEN",
        ),
        # The reverse: Stream's keys, DATABASE_URL empty; SQLite and demo users would have stood in.
        ({**COMPLETE, "DATABASE_URL": ""}, "DATABASE_URL"),
        ({k: v for k, v in COMPLETE.items() if k != "DATABASE_URL"}, "DATABASE_URL"),
        ({k: v for k, v in COMPLETE.items() if k != "ONECREW_SERVICE_TOKEN"}, "ONECREW_SERVICE_TOKEN"),
        (
            {k: v for k, v in COMPLETE.items() if k != "ONECREW_JWT_SECRET"},
            "ONECREW_JWT_SECRET (or ONECREW_JWT_PUBLIC_KEY)",
        ),
        ({k: v for k, v in COMPLETE.items() if k != "STREAM_API_SECRET"}, "STREAM_API_SECRET"),
        ({"ONECREW_JWT_SECRET": JWT_SECRET}, "DATABASE_URL, STREAM_API_KEY"),
        ({"STREAM_BASE_URL": "https://chat.stream-io-api.com"}, "DATABASE_URL, STREAM_API_KEY"),
    ],
)
def test_a_production_setting_without_its_partners_is_one_line_naming_what_is_missing(monkeypatch, env, missing):
    [line] = refused(monkeypatch, **env)
    assert line.startswith(f"production settings are incomplete: missing {missing}")
    assert "ONECREW_MODE=development" in line
    for secret in (JWT_SECRET, STREAM_SECRET, SERVICE_TOKEN, "u:p@"):
        assert secret not in line


def test_production_named_needs_every_setting(monkeypatch):
    [line] = refused(monkeypatch, ONECREW_MODE="production")
    assert line.startswith("production settings are incomplete: missing DATABASE_URL, STREAM_API_KEY")
    assert "(ONECREW_MODE=production)" in line
    assert settings_from(monkeypatch, ONECREW_MODE="Production", **COMPLETE).mode is Mode.PRODUCTION


def test_development_named_keeps_the_fallbacks_for_what_is_not_given(monkeypatch):
    settings = settings_from(monkeypatch, ONECREW_MODE="development", DATABASE_URL=COMPLETE["DATABASE_URL"])
    assert settings.development and not settings.embedded_database and settings.embedded_stream
    [line] = refused(monkeypatch, ONECREW_MODE="staging")
    assert line.startswith("ONECREW_MODE: Input should be 'development' or 'production'")


def test_stream_key_without_its_secret_is_refused_in_development_too(monkeypatch):
    [line] = refused(monkeypatch, ONECREW_MODE="development", STREAM_API_KEY=STREAM_KEY)
    assert line.startswith("STREAM_API_SECRET: is not set but STREAM_API_KEY is")


def test_stream_target_never_shows_credentials(monkeypatch):
    settings = settings_from(monkeypatch, **COMPLETE, STREAM_BASE_URL="https://user:hunter2@eu.stream.example/?x=1")
    assert settings.stream_target == "https://eu.stream.example"
    emulated = Settings(mode="development").with_embedded_stream("dev-key", "dev-secret", "http://127.0.0.1:1")
    assert emulated.stream_target == "embedded emulator"
    with pytest.raises(RuntimeError):
        settings.with_embedded_stream("k", "s", "http://127.0.0.1:1")


# --- settings that cannot work ---


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_an_asymmetric_algorithm_without_a_public_key_is_refused(monkeypatch, algorithm):
    [line] = refused(monkeypatch, ONECREW_JWT_ALGORITHMS=algorithm)
    assert line == f"ONECREW_JWT_ALGORITHMS: names {algorithm} but ONECREW_JWT_PUBLIC_KEY is not set"
    production = {k: v for k, v in COMPLETE.items() if k != "ONECREW_JWT_SECRET"}
    [line] = refused(monkeypatch, ONECREW_JWT_ALGORITHMS=algorithm, **production)
    assert line.startswith("production settings are incomplete: missing ONECREW_JWT_SECRET (or")


def test_a_public_key_of_the_wrong_kind_or_unused_is_refused(monkeypatch):
    [line] = refused(monkeypatch, **DEV, ONECREW_JWT_ALGORITHMS="RS256", ONECREW_JWT_PUBLIC_KEY=_pem(EC_PRIVATE))
    assert line.startswith("ONECREW_JWT_PUBLIC_KEY: is an EC key on secp256r1, which none of ONECREW_JWT_ALGORITHMS")
    assert "(ES256 would)" in line
    # The default algorithm list (HS256) with only a public key: every token would be 401.
    [line] = refused(monkeypatch, **DEV, ONECREW_JWT_ALGORITHMS="HS256", ONECREW_JWT_PUBLIC_KEY=_pem(RSA_PRIVATE))
    assert line.startswith("ONECREW_JWT_PUBLIC_KEY: is an RSA key (2048 bits), which none of")


def test_a_secret_no_algorithm_uses_is_refused(monkeypatch):
    [line] = refused(
        monkeypatch,
        **DEV,
        ONECREW_JWT_ALGORITHMS="RS256",
        ONECREW_JWT_PUBLIC_KEY=_pem(RSA_PRIVATE),
        ONECREW_JWT_SECRET="x" * 32,
    )
    assert line.startswith("ONECREW_JWT_SECRET: is set but ONECREW_JWT_ALGORITHMS (RS256) names no HMAC algorithm")


@pytest.mark.parametrize(
    ("algorithms", "size", "needed"),
    [("HS256", 1, 32), ("HS256", 31, 32), ("HS256,HS512", 40, 64), ("HS384", 47, 48)],
)
def test_a_short_hmac_secret_is_refused(monkeypatch, algorithms, size, needed):
    [line] = refused(monkeypatch, **DEV, ONECREW_JWT_ALGORITHMS=algorithms, ONECREW_JWT_SECRET="k" * size)
    assert line.startswith(f"ONECREW_JWT_SECRET: is {size} bytes; HS")
    assert f"needs at least {needed} (RFC 7518 section 3.2)" in line
    assert "k" * size not in line.split(";")[1]


def test_a_secret_of_the_minimum_length_is_accepted(monkeypatch):
    assert settings_from(monkeypatch, **DEV, ONECREW_JWT_SECRET="k" * 32).jwt_secret is not None


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("STREAM_BASE_URL", "not a url", "must be an http:// or https:// URL"),
        ("STREAM_BASE_URL", "https://", "must name a host"),
        ("STREAM_BASE_URL", "https://chat.example:port", "is not a URL"),
        ("ONECREW_PUBLIC_BASE_URL", "chat.example.com", "must be an http:// or https:// URL"),
    ],
)
def test_a_url_that_is_not_a_url_is_one_line(monkeypatch, name, value, words):
    [line] = refused(monkeypatch, **{name: value})
    assert line.startswith(f"{name}: ") and words in line


def test_a_previous_value_needs_its_current_one(monkeypatch):
    lines = refused(
        monkeypatch,
        ONECREW_MODE="development",
        ONECREW_JWT_SECRET_PREVIOUS="p" * 32,
        ONECREW_SERVICE_TOKEN_PREVIOUS="t",
    )
    assert [line.split(":")[0] for line in lines] == ["ONECREW_JWT_SECRET_PREVIOUS", "ONECREW_SERVICE_TOKEN_PREVIOUS"]
    [line] = refused(monkeypatch, **COMPLETE, ONECREW_JWT_SECRET_PREVIOUS="p" * 31)
    assert line.startswith("ONECREW_JWT_SECRET_PREVIOUS: is 31 bytes")


def test_unknown_onecrew_variables_are_warned_with_the_closest_name():
    warnings = unknown_setting_warnings(
        {
            "ONECREW_JWT_SECRETS": "x",
            "ONECREW_SERVCE_TOKEN": "x",
            "ONECREW_WHATEVER": "x",
            "ONECREW_JWT_SECRET": "x",
            "ONECREW_TEST_POSTGRES_URL": "x",  # the test suite's own
            "PATH": "/bin",
        }
    )
    assert warnings == [
        "ONECREW_JWT_SECRETS is not a onecrew-chat setting and is ignored; did you mean ONECREW_JWT_SECRET?",
        "ONECREW_SERVCE_TOKEN is not a onecrew-chat setting and is ignored; did you mean ONECREW_SERVICE_TOKEN?",
        "ONECREW_WHATEVER is not a onecrew-chat setting and is ignored; see docs/operations.md for the settings",
    ]


def test_misspelt_stream_variables_are_warned_with_the_name_meant():
    warnings = unknown_setting_warnings(
        {
            "STREAM_API_SECERT": "x",
            "STREAM_KEY": "x",
            "STREAM_API_KEY": "x",
            "STREAM_CONTRACT_SECRET": "x",  # the contract tests' own
            "STREAM_LOG_LEVEL": "x",  # like none of ours: another tool's, left alone
        }
    )
    assert warnings == [
        "STREAM_API_SECERT is not a onecrew-chat setting and is ignored; did you mean STREAM_API_SECRET?",
        "STREAM_KEY is not a onecrew-chat setting and is ignored; did you mean STREAM_API_KEY?",
    ]


def test_a_short_service_token_is_refused_in_production_only(monkeypatch):
    [line] = refused(monkeypatch, **{**COMPLETE, "ONECREW_SERVICE_TOKEN": "s" * 31})
    assert line.startswith("ONECREW_SERVICE_TOKEN: is 31 characters; production needs at least 32")
    assert "s" * 31 not in line
    assert settings_from(monkeypatch, **{**COMPLETE, "ONECREW_SERVICE_TOKEN": "s" * 32}).service_tokens == ["s" * 32]
    # Development keeps taking any token, and a short previous one does not block a rotation away from it.
    assert settings_from(monkeypatch, **DEV, ONECREW_SERVICE_TOKEN="dev").service_tokens == ["dev"]
    rotating = settings_from(monkeypatch, **COMPLETE, ONECREW_SERVICE_TOKEN_PREVIOUS="old")
    assert rotating.service_tokens == [SERVICE_TOKEN, "old"]


# --- two accepted values for each secret (rotation) ---


def _token(key, algorithm: str, sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, key, algorithm=algorithm)


def test_the_previous_jwt_secret_is_accepted_beside_the_current_one():
    new, old, other = "n" * 32, "o" * 32, "x" * 32
    verifier = TokenVerifier(Settings(mode="development", jwt_secret=new, jwt_secret_previous=old))
    me = new_id()
    assert verifier.user_id(f"Bearer {_token(new, 'HS256', me)}") == me
    assert verifier.user_id(f"Bearer {_token(old, 'HS256', me)}") == me
    with pytest.raises(Unauthorized):
        verifier.user_id(f"Bearer {_token(other, 'HS256', me)}")
    # Once the rotation is over (no previous value), the old secret's tokens stop working.
    with pytest.raises(Unauthorized):
        TokenVerifier(Settings(mode="development", jwt_secret=new)).user_id(f"Bearer {_token(old, 'HS256', me)}")


def test_the_previous_public_key_is_accepted_even_of_another_kind():
    """RS256 to ES256: the new key is EC, the previous one RSA; tokens of both verify."""
    settings = Settings(
        mode="development",
        jwt_algorithms="RS256,ES256",
        jwt_public_key=_pem(EC_PRIVATE),
        jwt_public_key_previous=_pem(RSA_PRIVATE),
    )
    verifier = TokenVerifier(settings)
    me = new_id()
    assert verifier.user_id(f"Bearer {_token(EC_PRIVATE, 'ES256', me)}") == me
    assert verifier.user_id(f"Bearer {_token(RSA_PRIVATE, 'RS256', me)}") == me
    with pytest.raises(Unauthorized):
        verifier.user_id(f"Bearer {_token(rsa.generate_private_key(65537, 2048), 'RS256', me)}")


def test_the_previous_service_token_is_accepted_beside_the_current_one():
    settings = Settings(mode="development", service_token="new-token", service_token_previous="old-token")
    check_service_token(settings, "Bearer new-token")
    check_service_token(settings, "Bearer old-token")
    for wrong in ("Bearer other", "Bearer ", None, "Basic new-token"):
        with pytest.raises(Unauthorized):
            check_service_token(settings, wrong)
    with pytest.raises(Unauthorized):
        check_service_token(Settings(mode="development", service_token="new-token"), "Bearer old-token")
