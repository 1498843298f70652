"""Embedded mode: what `serve` provides itself in development mode when DATABASE_URL or STREAM_API_KEY is not set.

Development mode (onecrew_chat.config_checks) is the only one with these fallbacks: no production setting given
at all, or ONECREW_MODE=development. In production a missing setting is refused at start instead.

- Development secrets (the JWT secret, the emulator's API key and secret) are generated once and kept in
  ONECREW_DATA_DIR/dev-secrets.json (mode 0600), so `dev-token` and `serve` agree across restarts.
- The Stream emulator runs in-process on a free loopback port, its state in a file next to the SQLite
  database so that Stream's users and channels survive restarts together with our mirror of them.
- An empty embedded database is filled with demo data (onecrew_chat.accounts.demo).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from pydantic import SecretStr

from onecrew_chat.config import Settings
from onecrew_chat.identity import normalize_uuid
from onecrew_chat.logging import get_logger

log = get_logger(__name__)

DEV_SECRETS_FILE = "dev-secrets.json"
EMULATOR_STATE_FILE = "stream-emulator.json"


def dev_secrets_path(settings: Settings) -> Path:
    """ONECREW_DATA_DIR/dev-secrets.json."""
    return settings.data_dir / DEV_SECRETS_FILE


def _read_secrets(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"{path} is unreadable ({type(exc).__name__}); delete it to generate new dev secrets"
        ) from exc
    return data if isinstance(data, dict) else {}


def _write_secrets(path: Path, data: dict[str, str]) -> None:
    """Write atomically, readable by the owner only (the file is created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def dev_secret(settings: Settings, name: str, *, nbytes: int = 32, prefix: str = "") -> str:
    """The persisted development secret `name`, generated on first use."""
    path = dev_secrets_path(settings)
    data = _read_secrets(path)
    value = data.get(name)
    if not value:
        value = prefix + secrets.token_urlsafe(nbytes)
        _write_secrets(path, {**data, name: value})
        log.debug("embedded.dev_secret_created", name=name, path=str(path))  # `serve` says it in words
    return value


def has_dev_jwt_secret(settings: Settings) -> bool:
    """True when the data folder already holds the dev JWT secret (`serve` made it)."""
    return bool(_read_secrets(dev_secrets_path(settings)).get("jwt_secret"))


def needs_dev_jwt_secret(settings: Settings) -> bool:
    """True in development mode when an HMAC algorithm is accepted and ONECREW_JWT_SECRET is not set."""
    hmac = any(alg.startswith("HS") for alg in settings.jwt_algorithms)
    return settings.development and hmac and not settings.jwt_secret


def with_dev_jwt_secret(settings: Settings) -> Settings:
    """In development without ONECREW_JWT_SECRET, the settings with the persisted dev secret (else unchanged)."""
    if not needs_dev_jwt_secret(settings):
        return settings
    return settings.model_copy(update={"jwt_secret": SecretStr(dev_secret(settings, "jwt_secret"))})


def with_dev_service_token(settings: Settings) -> Settings:
    """In embedded mode without ONECREW_SERVICE_TOKEN, the settings with a persisted dev one (for /api/internal)."""
    if not settings.embedded_database or settings.service_token:
        return settings
    return settings.model_copy(update={"service_token": SecretStr(dev_secret(settings, "service_token"))})


def dev_token(settings: Settings, user_id: str, *, ttl_s: int = 3600) -> str:
    """A JWT for `user_id` like the OneCrew backend issues, signed with the configured (or dev) HMAC secret."""
    if not settings.jwt_secret:
        raise RuntimeError(
            "no ONECREW_JWT_SECRET to sign with (with only ONECREW_JWT_PUBLIC_KEY, tokens come from the backend)"
        )
    algorithm = next((alg for alg in settings.jwt_algorithms if alg.upper().startswith("HS")), "HS256")
    now = int(time.time())
    claims = {"sub": normalize_uuid(user_id), "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=algorithm)


@dataclass
class EmbeddedStream:
    """The in-process emulator and the settings that point the service at it."""

    server: Any
    settings: Settings
    state_file: Path

    @property
    def base_url(self) -> str:
        """Where the emulator listens."""
        return self.settings.stream_base_url

    def stop(self) -> None:
        """Stop the emulator's HTTP thread."""
        self.server.stop()


def start_emulator(settings: Settings, *, host: str = "127.0.0.1") -> EmbeddedStream:
    """Start the Stream emulator in this process with persisted dev credentials; returns settings pointing at it."""
    from stream_emulator import Emulator, EmulatorServer

    api_key = dev_secret(settings, "stream_api_key", nbytes=12, prefix="dev-")
    api_secret = dev_secret(settings, "stream_api_secret")
    state_file = settings.data_dir / EMULATOR_STATE_FILE
    emulator = Emulator(api_key, api_secret, state_file=state_file)
    server = EmulatorServer(emulator, host, 0)  # port 0: the OS picks a free one, no race
    server.start()
    updated = settings.with_embedded_stream(api_key, api_secret, server.base_url)
    log.debug("embedded.emulator_started", base_url=server.base_url, state_file=str(state_file))
    return EmbeddedStream(server=server, settings=updated, state_file=state_file)


async def seed_demo_data(settings: Settings) -> bool:
    """Fill an empty embedded database with the demo directory; True if it did."""
    from onecrew_chat.accounts import demo
    from onecrew_chat.db import make_engine, make_sessionmaker

    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await demo.seed(session)
    finally:
        await engine.dispose()


async def register_webhook(settings: Settings, url: str) -> None:
    """Tell Stream (or the emulator) to deliver webhook events to `url`."""
    from onecrew_chat.stream.client import StreamGateway

    gateway = StreamGateway.from_settings(settings)
    try:
        await gateway.update_app_settings(webhook_url=url)
    finally:
        await gateway.close()
    log.debug("stream.webhook_registered", webhook_url=url)  # both callers say it in words
