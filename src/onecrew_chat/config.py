"""Settings read from the environment, passed explicitly into every factory."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class UnknownParticipants(StrEnum):
    """What to do with a participant id that is neither a known user nor a known company."""

    REJECT = "reject"
    PLACEHOLDER = "placeholder"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """Every knob of the service; documented one by one in the README."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", validate_by_name=True)

    database_url: str | None = Field(default=None, validation_alias=_env("DATABASE_URL"))
    data_dir: Path = Field(default=Path("var"), validation_alias=_env("ONECREW_DATA_DIR"))

    stream_api_key: str | None = Field(default=None, validation_alias=_env("STREAM_API_KEY"))
    stream_api_secret: SecretStr | None = Field(default=None, validation_alias=_env("STREAM_API_SECRET"))
    stream_base_url: str = Field(
        default="https://chat.stream-io-api.com", validation_alias=_env("STREAM_BASE_URL")
    )
    stream_timeout_s: float = Field(default=2.0, gt=0, validation_alias=_env("ONECREW_STREAM_TIMEOUT_S"))
    stream_token_ttl_s: int = Field(
        default=7 * 24 * 3600, gt=0, validation_alias=_env("ONECREW_STREAM_TOKEN_TTL")
    )

    jwt_secret: SecretStr | None = Field(default=None, validation_alias=_env("ONECREW_JWT_SECRET"))
    jwt_algorithms: list[str] = Field(default=["HS256"], validation_alias=_env("ONECREW_JWT_ALGORITHMS"))
    jwt_public_key: str | None = Field(default=None, validation_alias=_env("ONECREW_JWT_PUBLIC_KEY"))
    service_token: SecretStr | None = Field(default=None, validation_alias=_env("ONECREW_SERVICE_TOKEN"))

    provision_deadline_s: float = Field(
        default=3.0, gt=0, validation_alias=_env("ONECREW_PROVISION_DEADLINE_S")
    )
    unknown_participants: UnknownParticipants = Field(
        default=UnknownParticipants.REJECT, validation_alias=_env("ONECREW_UNKNOWN_PARTICIPANTS")
    )
    unread_cache_ttl_s: float = Field(default=10.0, ge=0, validation_alias=_env("ONECREW_UNREAD_CACHE_TTL_S"))
    idempotency_ttl_s: int = Field(default=24 * 3600, gt=0, validation_alias=_env("ONECREW_IDEMPOTENCY_TTL_S"))

    run_worker: bool = Field(default=True, validation_alias=_env("ONECREW_RUN_WORKER"))
    worker_poll_s: float = Field(default=1.0, gt=0, validation_alias=_env("ONECREW_WORKER_POLL_S"))
    reconcile_interval_s: float = Field(default=3600.0, ge=0, validation_alias=_env("ONECREW_RECONCILE_INTERVAL_S"))
    reconcile_deadline_s: float = Field(default=120.0, gt=0, validation_alias=_env("ONECREW_RECONCILE_DEADLINE_S"))
    reconcile_max_calls: int = Field(default=1000, gt=0, validation_alias=_env("ONECREW_RECONCILE_MAX_CALLS"))
    public_base_url: str | None = Field(default=None, validation_alias=_env("ONECREW_PUBLIC_BASE_URL"))
    # `onecrew-chat import users|companies|members --from-sql URL`: one SELECT per kind on OneCrew's database.
    import_users_sql: str = Field(
        default="SELECT id, name, image_url, category FROM users",
        min_length=1, validation_alias=_env("ONECREW_IMPORT_USERS_SQL"),
    )
    import_companies_sql: str = Field(
        default="SELECT id, name, logo_url, subcategory FROM companies",
        min_length=1, validation_alias=_env("ONECREW_IMPORT_COMPANIES_SQL"),
    )
    import_members_sql: str = Field(
        default="SELECT company_id, user_id, role, invitation_status FROM company_members",
        min_length=1, validation_alias=_env("ONECREW_IMPORT_MEMBERS_SQL"),
    )
    log_format: str = Field(default="console", validation_alias=_env("ONECREW_LOG_FORMAT"))
    log_level: str = Field(default="info", validation_alias=_env("ONECREW_LOG_LEVEL"))

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return value
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _no_none_algorithm(cls, value: list[str]) -> list[str]:
        if any(alg.lower() == "none" for alg in value):
            raise ValueError("ONECREW_JWT_ALGORITHMS must not contain 'none'")
        return value

    @property
    def embedded_database(self) -> bool:
        """True when no DATABASE_URL is set and the SQLite file in the data dir is used."""
        return not self.database_url

    @property
    def embedded_stream(self) -> bool:
        """True when no STREAM_API_KEY is set and the in-process emulator stands in for Stream."""
        return not self.stream_api_key

    @property
    def sqlite_path(self) -> Path:
        """Where the embedded SQLite database lives."""
        return self.data_dir / "onecrew-chat.sqlite3"

    @property
    def async_database_url(self) -> str:
        """DATABASE_URL as an operator writes it, turned into the async driver's URL."""
        url = self.database_url or f"sqlite:///{self.sqlite_path}"
        return to_async_url(url)


def to_async_url(url: str) -> str:
    """Map `sqlite:///x` and `postgresql://...` to the aiosqlite and asyncpg dialects."""
    for prefix, replacement in (
        ("sqlite+aiosqlite://", "sqlite+aiosqlite://"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql+asyncpg://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a sqlite:// or postgresql:// URL, got scheme of {url.split(':', 1)[0]!r}")
