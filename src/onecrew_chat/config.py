"""Settings read from the environment, passed explicitly into every factory."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import jwt
from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from onecrew_chat import config_checks
from onecrew_chat.config_checks import JwtKeys, Mode
from onecrew_chat.database_url import check_database_url, to_async_url


class UnknownParticipants(StrEnum):
    """What to do with a participant id that is neither a known user nor a known company."""

    REJECT = "reject"
    PLACEHOLDER = "placeholder"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


DB_POOL_SIZE = 30  # PostgreSQL connections a process keeps at most (ONECREW_DB_POOL_SIZE)


class Settings(BaseSettings):
    """Every knob of the service; documented one by one in docs/operations.md and docs/settings.md."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", validate_by_name=True)

    # Unset: development when no production setting is given, else production (config_checks says which).
    mode: Mode | None = Field(default=None, validation_alias=_env("ONECREW_MODE"))
    database_url: str | None = Field(default=None, validation_alias=_env("DATABASE_URL"))
    # Connections a process keeps once it has needed them (the pool), and extra ones opened beyond it and closed on
    # their return (overflow). No overflow by default: a process whose load goes past the pool now and then opened
    # and closed a connection every 11 requests at 16 concurrent (a new server process and a cold statement cache
    # each time); keeping up to 30 costs the same at most and none of that.
    db_pool_size: int = Field(default=DB_POOL_SIZE, ge=1, le=1000, validation_alias=_env("ONECREW_DB_POOL_SIZE"))
    db_max_overflow: int = Field(default=0, ge=0, le=1000, validation_alias=_env("ONECREW_DB_MAX_OVERFLOW"))
    db_statement_timeout_ms: int = Field(default=0, ge=0, validation_alias=_env("ONECREW_DB_STATEMENT_TIMEOUT_MS"))
    db_lock_timeout_ms: int = Field(default=0, ge=0, validation_alias=_env("ONECREW_DB_LOCK_TIMEOUT_MS"))
    # DATABASE_URL points at PgBouncer in transaction mode: no prepared statement outlives its transaction.
    db_transaction_pooler: bool = Field(default=False, validation_alias=_env("ONECREW_DB_TRANSACTION_POOLER"))
    # Where the unread-cache LISTEN connects when DATABASE_URL is a transaction pooler (a session needs a session).
    db_listen_url: str | None = Field(default=None, validation_alias=_env("ONECREW_DB_LISTEN_URL"))
    data_dir: Path = Field(default=Path("var"), validation_alias=_env("ONECREW_DATA_DIR"))

    stream_api_key: str | None = Field(default=None, validation_alias=_env("STREAM_API_KEY"))
    stream_api_secret: SecretStr | None = Field(default=None, validation_alias=_env("STREAM_API_SECRET"))
    stream_base_url: str = Field(default="https://chat.stream-io-api.com", validation_alias=_env("STREAM_BASE_URL"))
    stream_timeout_s: float = Field(default=2.0, gt=0, validation_alias=_env("ONECREW_STREAM_TIMEOUT_S"))
    stream_token_ttl_s: int = Field(default=7 * 24 * 3600, gt=0, validation_alias=_env("ONECREW_STREAM_TOKEN_TTL"))

    jwt_secret: SecretStr | None = Field(default=None, validation_alias=_env("ONECREW_JWT_SECRET"))
    # Rotation: the value being replaced, accepted beside the current one until every holder has the new one.
    jwt_secret_previous: SecretStr | None = Field(default=None, validation_alias=_env("ONECREW_JWT_SECRET_PREVIOUS"))
    # NoDecode: read as text and split by _split_algorithms, so `HS256,RS256` works as well as `["HS256"]`.
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default=["HS256"], validation_alias=_env("ONECREW_JWT_ALGORITHMS")
    )
    jwt_public_key: str | None = Field(default=None, validation_alias=_env("ONECREW_JWT_PUBLIC_KEY"))
    jwt_public_key_previous: str | None = Field(default=None, validation_alias=_env("ONECREW_JWT_PUBLIC_KEY_PREVIOUS"))
    service_token: SecretStr | None = Field(default=None, validation_alias=_env("ONECREW_SERVICE_TOKEN"))
    service_token_previous: SecretStr | None = Field(
        default=None, validation_alias=_env("ONECREW_SERVICE_TOKEN_PREVIOUS")
    )

    provision_deadline_s: float = Field(default=3.0, gt=0, validation_alias=_env("ONECREW_PROVISION_DEADLINE_S"))
    unknown_participants: UnknownParticipants = Field(
        default=UnknownParticipants.REJECT, validation_alias=_env("ONECREW_UNKNOWN_PARTICIPANTS")
    )
    unread_cache_ttl_s: float = Field(default=10.0, ge=0, validation_alias=_env("ONECREW_UNREAD_CACHE_TTL_S"))
    idempotency_ttl_s: int = Field(default=24 * 3600, gt=0, validation_alias=_env("ONECREW_IDEMPOTENCY_TTL_S"))

    # API processes `serve` runs on one port (`serve --workers N` overrides); the outbox worker runs in the first.
    web_workers: int = Field(default=1, ge=1, le=64, validation_alias=_env("ONECREW_WEB_WORKERS"))
    # Serves GET /_debug/process (pid, SQL statement and transaction counters) for `make bench`; never in production.
    debug_endpoints: bool = Field(default=False, validation_alias=_env("ONECREW_DEBUG_ENDPOINTS"))
    run_worker: bool = Field(default=True, validation_alias=_env("ONECREW_RUN_WORKER"))
    worker_poll_s: float = Field(default=1.0, gt=0, validation_alias=_env("ONECREW_WORKER_POLL_S"))
    reconcile_interval_s: float = Field(default=3600.0, ge=0, validation_alias=_env("ONECREW_RECONCILE_INTERVAL_S"))
    reconcile_deadline_s: float = Field(default=120.0, gt=0, validation_alias=_env("ONECREW_RECONCILE_DEADLINE_S"))
    reconcile_max_calls: int = Field(default=1000, gt=0, validation_alias=_env("ONECREW_RECONCILE_MAX_CALLS"))
    # --- outbox worker pause and retention ---
    worker_pause_probe_s: float = Field(default=30.0, gt=0, validation_alias=_env("ONECREW_WORKER_PAUSE_PROBE_S"))
    retention_interval_s: float = Field(default=3600.0, ge=0, validation_alias=_env("ONECREW_RETENTION_INTERVAL_S"))
    retention_batch: int = Field(default=1000, gt=0, le=100_000, validation_alias=_env("ONECREW_RETENTION_BATCH"))
    retention_outbox_done_h: float = Field(
        default=168.0, ge=0, validation_alias=_env("ONECREW_RETENTION_OUTBOX_DONE_H")
    )
    # Stream retries a webhook within minutes; a day is the floor, so a redelivery is always recognised.
    retention_webhook_events_h: float = Field(
        default=168.0, ge=24, validation_alias=_env("ONECREW_RETENTION_WEBHOOK_EVENTS_H")
    )
    retention_drift_resolved_h: float = Field(
        default=720.0, ge=0, validation_alias=_env("ONECREW_RETENTION_DRIFT_RESOLVED_H")
    )
    public_base_url: str | None = Field(default=None, validation_alias=_env("ONECREW_PUBLIC_BASE_URL"))
    # --- observability (onecrew-chat status, worker metrics, start-up checks) ---
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535, validation_alias=_env("ONECREW_WORKER_METRICS_PORT"))
    worker_metrics_host: str = Field(default="127.0.0.1", validation_alias=_env("ONECREW_WORKER_METRICS_HOST"))
    worker_heartbeat_s: float = Field(default=15.0, gt=0, validation_alias=_env("ONECREW_WORKER_HEARTBEAT_S"))
    stream_startup_check: bool = Field(default=True, validation_alias=_env("ONECREW_STREAM_STARTUP_CHECK"))
    log_format: Literal["console", "json"] = Field(default="console", validation_alias=_env("ONECREW_LOG_FORMAT"))
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info", validation_alias=_env("ONECREW_LOG_LEVEL")
    )
    host: str = Field(default="127.0.0.1", min_length=1, validation_alias=_env("HOST"))
    port: int = Field(default=8000, ge=0, le=65535, validation_alias=_env("PORT"))

    @field_validator("database_url", mode="before")
    @classmethod
    def _known_database_url(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            return check_database_url(value) if value else None
        return value

    @field_validator("db_listen_url", mode="before")
    @classmethod
    def _known_listen_url(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if value and not value.startswith(("postgresql://", "postgres://")):
                raise ValueError("must be a postgresql:// URL (the database itself, or a session-mode pool)")
            return check_database_url(value) if value else None
        return value

    @model_validator(mode="after")
    def _pooler_takes_no_session_settings(self) -> Settings:
        if self.db_transaction_pooler and (self.db_statement_timeout_ms or self.db_lock_timeout_ms):
            raise ValueError(
                "ONECREW_DB_STATEMENT_TIMEOUT_MS and ONECREW_DB_LOCK_TIMEOUT_MS are sent as start-up parameters, "
                "which PgBouncer refuses or ignores: with ONECREW_DB_TRANSACTION_POOLER set them on the database "
                "role instead (ALTER ROLE ... SET statement_timeout)"
            )
        return self

    # The in-process emulator `serve` started in development (set by with_embedded_stream, never from the environment).
    _stream_is_emulator: bool = PrivateAttr(default=False)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_any_case(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator(
        "stream_api_secret",
        "jwt_secret",
        "jwt_secret_previous",
        "service_token",
        "service_token_previous",
        mode="before",
    )
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("stream_api_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("stream_base_url", "public_base_url", mode="before")
    @classmethod
    def _http_url(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            problem = config_checks.http_url_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("jwt_public_key", "jwt_public_key_previous", mode="before")
    @classmethod
    def _pem(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            return None if isinstance(value, str) else value
        # One-line env files often carry the PEM with literal \n: turn those back into line breaks.
        text = value.strip().replace("\\n", "\n")
        if not text.startswith("-----BEGIN ") or "PUBLIC KEY-----" not in text:
            raise ValueError("must be a PEM public key (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----)")
        return text + "\n"

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    # `onecrew-chat import users|companies|members --from-sql URL`: one SELECT per kind on OneCrew's database.
    import_users_sql: str = Field(
        default="SELECT id, name, image_url, category FROM users",
        min_length=1,
        validation_alias=_env("ONECREW_IMPORT_USERS_SQL"),
    )
    import_companies_sql: str = Field(
        default="SELECT id, name, logo_url, subcategory FROM companies",
        min_length=1,
        validation_alias=_env("ONECREW_IMPORT_COMPANIES_SQL"),
    )
    import_members_sql: str = Field(
        default="SELECT company_id, user_id, role, invitation_status FROM company_members",
        min_length=1,
        validation_alias=_env("ONECREW_IMPORT_MEMBERS_SQL"),
    )

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError:
                    raise ValueError("is neither a JSON list nor comma separated names (e.g. HS256,RS256)") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("names no algorithm (e.g. HS256 or HS256,RS256)")
        if any(alg.lower() == "none" for alg in value):
            raise ValueError("must not contain 'none'")
        known = sorted(jwt.algorithms.get_default_algorithms())
        known_upper = {name.upper(): name for name in known if name != "none"}
        unknown = [alg for alg in value if alg.upper() not in known_upper]
        if unknown:
            shown, names = ", ".join(map(repr, unknown)), ", ".join(known_upper.values())
            raise ValueError(f"unknown algorithm {shown} (known: {names})")
        return list(dict.fromkeys(known_upper[alg.upper()] for alg in value))

    @model_validator(mode="after")
    def _can_work(self) -> Settings:
        """Decide the mode, then refuse what cannot work: one line per problem (see onecrew_chat.config_checks)."""
        given = self._production_settings_given()
        requested, self.mode = self.mode, config_checks.resolve_mode(self.mode, given)
        problems: list[str | None] = []
        if self.mode is Mode.PRODUCTION:
            problems.append(config_checks.missing_in_production(requested, given))
            token = self.service_token.get_secret_value() if self.service_token else None
            problems.append(config_checks.service_token_problem(token))
        elif bool(self.stream_api_key) != bool(self.stream_api_secret):  # production: missing_in_production says it
            present, absent = ("STREAM_API_KEY", "STREAM_API_SECRET")[:: 1 if self.stream_api_key else -1]
            problems.append(f"{absent}: is not set but {present} is; set both (or, in development, neither)")
        problems += config_checks.rotation_problems(
            {
                "ONECREW_JWT_SECRET": (bool(self.jwt_secret), bool(self.jwt_secret_previous)),
                "ONECREW_JWT_PUBLIC_KEY": (bool(self.jwt_public_key), bool(self.jwt_public_key_previous)),
                "ONECREW_SERVICE_TOKEN": (bool(self.service_token), bool(self.service_token_previous)),
            }
        )
        problems += config_checks.jwt_problems(self._jwt_keys())
        lines = [line for line in problems if line]
        if lines:
            # One line per problem (the command line prints each as its own `error:` line).
            raise ValueError("\n".join(lines))
        return self

    def _production_settings_given(self) -> list[str]:
        names = setting_names()
        given = [names[name] for name in self.model_fields_set if getattr(self, name) not in (None, "")]
        return [name for name in given if name in config_checks.PRODUCTION_SETTINGS]

    def _jwt_keys(self) -> JwtKeys:
        secrets = {"ONECREW_JWT_SECRET": self.jwt_secret, "ONECREW_JWT_SECRET_PREVIOUS": self.jwt_secret_previous}
        keys = {
            "ONECREW_JWT_PUBLIC_KEY": self.jwt_public_key,
            "ONECREW_JWT_PUBLIC_KEY_PREVIOUS": self.jwt_public_key_previous,
        }
        return JwtKeys(
            algorithms=self.jwt_algorithms,
            secrets={name: value.get_secret_value() for name, value in secrets.items() if value},
            public_keys={name: value for name, value in keys.items() if value},
            secret_may_be_generated=self.mode is Mode.DEVELOPMENT,
            absence_reported=self.mode is Mode.PRODUCTION and not (self.jwt_secret or self.jwt_public_key),
        )

    @property
    def mode_name(self) -> str:
        """`development` or `production` (decided when the settings were read)."""
        return (self.mode or Mode.PRODUCTION).value

    @property
    def development(self) -> bool:
        """True in development mode, the only one in which the embedded fallbacks may stand in for a setting."""
        return self.mode is Mode.DEVELOPMENT

    @property
    def jwt_hmac_secrets(self) -> list[str]:
        """The HMAC secrets a JWT may be signed with: the current one, then the previous one (rotation)."""
        return [s.get_secret_value() for s in (self.jwt_secret, self.jwt_secret_previous) if s is not None]

    @property
    def jwt_public_keys(self) -> list[str]:
        """The PEM public keys a JWT may verify with: the current one, then the previous one (rotation)."""
        return [key for key in (self.jwt_public_key, self.jwt_public_key_previous) if key]

    @property
    def service_tokens(self) -> list[str]:
        """The service tokens accepted: the current one, then the previous one (rotation)."""
        return [t.get_secret_value() for t in (self.service_token, self.service_token_previous) if t is not None]

    @property
    def stream_target(self) -> str:
        """Which Stream this process talks to, safe to show: "embedded emulator" or the base URL without secrets."""
        return "embedded emulator" if self._stream_is_emulator else config_checks.shown_url(self.stream_base_url)

    def with_embedded_stream(self, api_key: str, api_secret: str, base_url: str) -> Settings:
        """These settings pointing at the in-process emulator `serve` started (development only)."""
        if not self.development:
            raise RuntimeError("the embedded Stream emulator runs only in development mode")
        updated = self.model_copy(
            update={"stream_api_key": api_key, "stream_api_secret": SecretStr(api_secret), "stream_base_url": base_url}
        )
        updated._stream_is_emulator = True
        return updated

    @property
    def embedded_database(self) -> bool:
        """True in development when no DATABASE_URL is set: the SQLite file in the data dir is used."""
        return self.development and not self.database_url

    @property
    def embedded_stream(self) -> bool:
        """True in development when no STREAM_API_KEY is set: `serve` runs the emulator in-process for Stream."""
        return self.development and not self.stream_api_key

    @property
    def sqlite_path(self) -> Path:
        """Where the embedded SQLite database lives."""
        return self.data_dir / "onecrew-chat.sqlite3"

    @property
    def async_database_url(self) -> str:
        """DATABASE_URL as an operator writes it, turned into the async driver's URL (development: the SQLite file)."""
        if not self.database_url and not self.development:  # the settings refuse this; never fall back in production
            raise RuntimeError("no DATABASE_URL in production mode")
        url = self.database_url or f"sqlite:///{self.sqlite_path}"
        return to_async_url(url)

    @property
    def database_server_settings(self) -> dict[str, str]:
        """PostgreSQL session settings every pooled connection starts with (statement and lock timeouts)."""
        settings = {}
        if self.db_statement_timeout_ms:
            settings["statement_timeout"] = str(self.db_statement_timeout_ms)
        if self.db_lock_timeout_ms:
            settings["lock_timeout"] = str(self.db_lock_timeout_ms)
        return settings


def setting_names() -> dict[str, str]:
    """Every environment variable the service reads, by Settings field name."""
    return {name: _env_name(field) for name, field in Settings.model_fields.items()}


def _env_name(field: FieldInfo) -> str:
    """The first of a field's validation aliases: every setting is declared with AliasChoices."""
    alias = field.validation_alias
    assert isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str), alias
    return alias.choices[0]


def unknown_setting_warnings(environ: dict[str, str]) -> list[str]:
    """One line per ONECREW_* variable in `environ` that is not a setting (with the closest known name), and per
    STREAM_* variable that looks like a misspelt one of ours (STREAM_API_SECERT)."""
    return config_checks.unknown_setting_warnings(environ, setting_names().values())


__all__ = ["Mode", "Settings", "UnknownParticipants", "setting_names", "to_async_url", "unknown_setting_warnings"]
