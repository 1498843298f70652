"""Test helpers shared by every layer: JWTs, directory rows and waiting on conditions with a deadline."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socketserver
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator

import jwt
import structlog

JWT_SECRET = "test-onecrew-jwt-secret-0123456789abcdef"
SERVICE_TOKEN = "test-service-token-0123456789abcdef"
STREAM_KEY = "test-key"
STREAM_SECRET = "test-stream-secret-0123456789abcdef"


def make_jwt(sub: str, *, secret: str = JWT_SECRET, exp_in: int = 3600, algorithm: str = "HS256", **claims) -> str:
    """A OneCrew backend JWT for `sub`."""
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + exp_in, **claims}
    return jwt.encode(payload, secret, algorithm=algorithm)


def tampered_jwt(token: str) -> str:
    """`token` with one bit of its signature flipped: the decoded signature always differs (changing a base64url
    character could touch only the unused bits of the last one, leaving the same bytes and a valid token)."""
    header_and_payload, signature = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    return f"{header_and_payload}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


def auth(sub: str, **kwargs) -> dict[str, str]:
    """Headers the app sends: bearer JWT and JSON content type."""
    return {"Authorization": f"Bearer {make_jwt(sub, **kwargs)}", "Content-Type": "application/json"}


def service_auth() -> dict[str, str]:
    """Headers of the main OneCrew backend calling /api/internal/*."""
    return {"Authorization": f"Bearer {SERVICE_TOKEN}"}


def new_id() -> str:
    """A fresh lowercase uuid."""
    return str(uuid.uuid4())


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool], *, timeout: float = 30.0, what: str = "condition"
):
    """Poll `predicate` until it is true or fail after `timeout` seconds (never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)  # polling interval of a deadline-bounded wait


async def in_stream(emulator, stream_id: str, timeout: float = 30.0, **fields) -> dict:
    """Wait until Stream holds the user (with these fields): a token queues its identity for Stream's next batch
    instead of waiting for it (sync/coalescer.py), so the user arrives shortly after the answer."""

    def held() -> dict | None:
        user = emulator.get_user(stream_id)
        return user if user is not None and all(user.get(k) == v for k, v in fields.items()) else None

    return await wait_until(held, timeout=timeout, what=f"{stream_id} in Stream with {fields}")


async def identities_sent(app) -> None:
    """Wait until the identities tokens queued have reached Stream and the mirror (or the outbox, if Stream failed)."""
    from onecrew_chat.sync.coalescer import coalescer

    batches = coalescer(app.state.runtime)
    await wait_until(lambda: batches.idle, what="the queued identities sent to Stream")


# socketserver's serve_forever notices shutdown() only between polls, every 0.5 s by default: each test's webhook
# receiver then took half a second to stop. Polling every 50 ms bounds that wait instead.
SHUTDOWN_POLL_S = 0.05


def serve_in_background(server: socketserver.BaseServer) -> threading.Thread:
    """Run `server` on a daemon thread until `server.shutdown()`, which then returns within SHUTDOWN_POLL_S."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_S}, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Put structlog and the standard library's logging back as they were before the block.

    `configure_logging` (and every command run in-process) writes to the stderr of the moment, which under pytest is
    a capture that is closed after the test: a later test would log into a closed file."""
    from onecrew_chat.logging import _ROUTED_LOGGERS

    saved = structlog.get_config()
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in _ROUTED_LOGGERS)]
    kept = [(logger, list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    showwarning = warnings.showwarning
    try:
        yield
    finally:
        structlog.configure(**saved)
        for logger, handlers, level, propagate in kept:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        if warnings.showwarning is not showwarning:
            logging.captureWarnings(False)
            warnings.showwarning = showwarning
