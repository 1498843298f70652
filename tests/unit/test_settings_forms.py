"""Settings parse the way operators write them, and every invalid one is refused in one line that names it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from onecrew_chat.cli.settings import settings_problems
from onecrew_chat.config import Settings
from onecrew_chat.database_url import driver_target, to_async_url


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No setting leaks in from the shell that runs the tests."""
    import os

    for name in list(os.environ):
        if name.startswith(("ONECREW_", "STREAM_")) or name in ("DATABASE_URL", "PORT", "HOST"):
            monkeypatch.delenv(name)


def _public_pem(algorithm: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    private = rsa.generate_private_key(65537, 2048) if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    public = private.public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def problems(monkeypatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    return settings_problems(raised.value)


@pytest.mark.parametrize(
    ("written", "parsed"),
    [
        ("HS256", ["HS256"]),
        ("HS256,RS256", ["HS256", "RS256"]),
        (" hs256 , es256 ", ["HS256", "ES256"]),
        ('["HS256", "RS256"]', ["HS256", "RS256"]),
        ("HS256,HS256", ["HS256"]),
    ],
)
def test_jwt_algorithms_comma_list_or_json_list(monkeypatch, written, parsed):
    monkeypatch.setenv("ONECREW_JWT_ALGORITHMS", written)
    if parsed != ["HS256"]:  # an algorithm needs a key to verify with (tests/unit/test_settings_mode.py)
        monkeypatch.setenv("ONECREW_MODE", "development")
        monkeypatch.setenv("ONECREW_JWT_PUBLIC_KEY", _public_pem(parsed[1]))
    assert Settings().jwt_algorithms == parsed


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("none", "must not contain 'none'"),
        ("HS256,nOnE", "must not contain 'none'"),
        ("HS257", "unknown algorithm 'HS257'"),
        ('["HS256"', "is neither a JSON list nor comma separated names"),
        (",", "names no algorithm"),
    ],
)
def test_bad_jwt_algorithms_are_one_line_naming_the_setting(monkeypatch, written, words):
    [line] = problems(monkeypatch, ONECREW_JWT_ALGORITHMS=written)
    assert line.startswith("ONECREW_JWT_ALGORITHMS: ") and words in line


@pytest.mark.parametrize(
    ("written", "expected"),
    [("json", "json"), ("JSON", "json"), ("Console", "console")],
)
def test_log_format_any_case(monkeypatch, written, expected):
    monkeypatch.setenv("ONECREW_LOG_FORMAT", written)
    assert Settings().log_format == expected


def test_log_level_any_case_and_unknown_refused(monkeypatch):
    monkeypatch.setenv("ONECREW_LOG_LEVEL", "DEBUG")
    assert Settings().log_level == "debug"
    [line] = problems(monkeypatch, ONECREW_LOG_LEVEL="verbose")
    assert line == "ONECREW_LOG_LEVEL: Input should be 'debug', 'info', 'warning', 'error' or 'critical'"
    [line] = problems(monkeypatch, ONECREW_LOG_LEVEL="info", ONECREW_LOG_FORMAT="xml")
    assert line == "ONECREW_LOG_FORMAT: Input should be 'console' or 'json'"


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@db.example:5432/chat",
        "postgresql://u:p@db.example/chat?sslmode=require",
        "postgresql+asyncpg://u@db.example/chat",
        "sqlite:///var/x.sqlite3",
        "sqlite+aiosqlite:///var/x.sqlite3",
    ],
)
def test_database_url_forms(monkeypatch, url):
    monkeypatch.setenv("ONECREW_MODE", "development")  # the database alone (production needs every setting)
    monkeypatch.setenv("DATABASE_URL", url)
    settings = Settings()
    assert settings.database_url == url
    assert settings.async_database_url.split("://")[0] in ("postgresql+asyncpg", "sqlite+aiosqlite")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u@h/db", "got scheme 'mysql'"),
        ("postgresq://u@h/db", "got scheme 'postgresq'"),
        ("db.example:5432/chat", "must be a postgresql://, postgres:// or sqlite:/// URL"),
        ("postgres://u@h/db?sslmode=required", "sslmode must be one of disable, allow, prefer, require"),
        ("postgres://u@h/db?connect_timeout=soon", "connect_timeout must be whole seconds"),
        ("postgres://u@h/db?pool=5", "unknown parameter 'pool'"),
        ("postgres://u@h:notaport/db", "is not a valid URL"),
    ],
)
def test_bad_database_url_is_one_line_without_the_password(monkeypatch, url, words):
    [line] = problems(monkeypatch, DATABASE_URL=url.replace("u@", "u:hunter2@"))
    assert line.startswith("DATABASE_URL: ") and words in line
    assert "hunter2" not in line


def test_libpq_parameters_become_asyncpg_arguments():
    url = (
        "postgres://u:p@db.example:6543/chat?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/etc/c.pem"
        "&sslkey=/etc/k.pem&connect_timeout=7&application_name=chat-api&options=-c%20search_path%3Dchat"
        "&target_session_attrs=read-write"
    )
    target = driver_target(url, server_settings={"statement_timeout": "5000"})
    assert target.url.render_as_string(hide_password=False) == "postgresql+asyncpg://u:p@db.example:6543/chat"
    assert target.connect_args == {
        "dsn": "postgresql://?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&sslcert=%2Fetc%2Fc.pem"
        "&sslkey=%2Fetc%2Fk.pem&target_session_attrs=read-write",
        "timeout": 7.0,
        "server_settings": {
            "application_name": "chat-api",
            "options": "-c search_path=chat",
            "statement_timeout": "5000",
        },
    }
    assert to_async_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert driver_target("postgres://u@h/db?connect_timeout=0").connect_args == {}


def test_pool_and_timeout_settings(monkeypatch):
    for name, value in {
        "ONECREW_DB_POOL_SIZE": "4",
        "ONECREW_DB_MAX_OVERFLOW": "0",
        "ONECREW_DB_STATEMENT_TIMEOUT_MS": "15000",
        "ONECREW_DB_LOCK_TIMEOUT_MS": "2000",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.db_pool_size, settings.db_max_overflow) == (4, 0)
    assert settings.database_server_settings == {"statement_timeout": "15000", "lock_timeout": "2000"}
    assert Settings(db_statement_timeout_ms=0, db_lock_timeout_ms=0).database_server_settings == {}
    [line] = problems(monkeypatch, ONECREW_DB_POOL_SIZE="0")
    assert line == "ONECREW_DB_POOL_SIZE: Input should be greater than or equal to 1"
    [line] = problems(monkeypatch, ONECREW_DB_POOL_SIZE="4", ONECREW_DB_LOCK_TIMEOUT_MS="-1")
    assert line == "ONECREW_DB_LOCK_TIMEOUT_MS: Input should be greater than or equal to 0"


def test_port_and_host(monkeypatch):
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("HOST", "0.0.0.0")
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    [line] = problems(monkeypatch, PORT="http")
    assert line.startswith("PORT: Input should be a valid integer")
    [line] = problems(monkeypatch, PORT="70000")
    assert line == "PORT: Input should be less than or equal to 65535"


def test_public_key_pem_with_escaped_newlines(monkeypatch):
    pem = _public_pem("ES256").strip().replace("\n", "\\n")
    monkeypatch.setenv("ONECREW_MODE", "development")
    monkeypatch.setenv("ONECREW_JWT_ALGORITHMS", "ES256")
    monkeypatch.setenv("ONECREW_JWT_PUBLIC_KEY", pem)
    assert Settings().jwt_public_key.splitlines()[0] == "-----BEGIN PUBLIC KEY-----"
    [line] = problems(monkeypatch, ONECREW_JWT_PUBLIC_KEY="not a key")
    assert line.startswith("ONECREW_JWT_PUBLIC_KEY: must be a PEM public key")


def test_several_bad_settings_give_one_line_each(monkeypatch):
    lines = problems(
        monkeypatch, ONECREW_JWT_ALGORITHMS="HS256,XX", DATABASE_URL="mysql://h/db", ONECREW_DB_MAX_OVERFLOW="-2"
    )
    assert sorted(line.split(":")[0] for line in lines) == [
        "DATABASE_URL",
        "ONECREW_DB_MAX_OVERFLOW",
        "ONECREW_JWT_ALGORITHMS",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ONECREW_STREAM_TIMEOUT_S", "0"),
        ("ONECREW_PROVISION_DEADLINE_S", "soon"),
        ("ONECREW_UNKNOWN_PARTICIPANTS", "guess"),
        ("ONECREW_RUN_WORKER", "perhaps"),
        ("ONECREW_RECONCILE_MAX_CALLS", "0"),
        ("ONECREW_STREAM_TOKEN_TTL", "-5"),
    ],
)
def test_other_bad_values_name_their_setting(monkeypatch, name, value):
    [line] = problems(monkeypatch, **{name: value})
    assert line.startswith(f"{name}: ")
