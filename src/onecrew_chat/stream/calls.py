"""The one choke point every Stream call goes through: it classifies failures, meters and counts.

Calls are sent on the getstream SDK's keep-alive HTTP client (its auth, headers and timeouts) over our own
connection pool (stream/pool.py), but sent and read by stream/wire.py: JSON in and out in this thread, no SDK
request pipeline (two thread hops a call, a telemetry span, the answer parsed twice). Every failure becomes one
of stream/errors.py's classes; every call is counted, timed and its rate-limit headers kept per operation.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import httpx
import structlog
from getstream import AsyncStream
from getstream.exceptions import StreamApiException, StreamTransportException
from getstream.rate_limit import RateLimitInfo

from onecrew_chat import metrics
from onecrew_chat.stream.endpoint import Endpoint
from onecrew_chat.stream.errors import (
    StreamBatchError,
    StreamError,
    StreamRateLimited,
    StreamRequestError,
    StreamUnavailable,
    StreamUsersMissing,
    from_api_exception,
)
from onecrew_chat.stream.pool import StackTransport
from onecrew_chat.stream.wire import Answer, Send

if TYPE_CHECKING:
    from onecrew_chat.config import Settings

log = structlog.get_logger(
    "onecrew_chat.stream.client"
)  # structlog directly: this package imports nothing else of ours

# Calls in flight at once per process (and so connections to Stream): more wait, in order, within the timeout.
MAX_CALLS_IN_FLIGHT = 100
KEEPALIVE_S = 55.0  # an idle connection's life: under the 60 s a balancer in front of Stream typically allows


@dataclass
class CallCount:
    """Stream calls made within a `counting_calls` block (a request, a run); nested blocks count into their outer ones."""

    calls: int = 0
    outer: CallCount | None = None


_COUNT: ContextVar[CallCount | None] = ContextVar("onecrew_stream_call_count", default=None)


@contextlib.contextmanager
def counting_calls() -> Iterator[CallCount]:
    """Count the Stream calls this task (and the tasks it starts) makes inside the block."""
    count = CallCount(outer=_COUNT.get())
    token = _COUNT.set(count)
    try:
        yield count
    finally:
        _COUNT.reset(token)


class StreamCalls:
    """The gateway's plumbing: its settings, its HTTP client and `_call`, through which every operation goes."""

    def __init__(self, api_key: str, api_secret: str, base_url: str, timeout_s: float = 2.0):
        self.api_key = api_key
        self._api_secret = api_secret
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.calls = 0
        # The x-ratelimit-* headers of the latest answer per operation (callers pace themselves by them).
        self.rate_limits: dict[str, RateLimitInfo] = {}
        self._sdk: AsyncStream | None = None
        self._endpoint: Endpoint | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build from Settings (STREAM_API_KEY, STREAM_API_SECRET, STREAM_BASE_URL, ONECREW_STREAM_TIMEOUT_S)."""
        # A plain str when the settings were copied with model_copy(update=...), which skips validation.
        secret: Any = settings.stream_api_secret
        return cls(
            api_key=settings.stream_api_key or "",
            api_secret=secret.get_secret_value() if hasattr(secret, "get_secret_value") else (secret or ""),
            base_url=settings.stream_base_url,
            timeout_s=settings.stream_timeout_s,
        )

    def create_user_token(self, user_id: str, ttl_s: int) -> str:
        """A Stream user token (HS256 with user_id, iat and exp), signed locally; no HTTP call."""
        if not user_id:
            raise ValueError("user_id is required")
        token: str = self._client("CreateToken").create_token(user_id, expiration=int(ttl_s))
        return token

    async def close(self) -> None:
        """Close the HTTP pool."""
        if self._sdk is not None:
            sdk, self._sdk, self._endpoint = self._sdk, None, None
            await sdk.aclose()

    # --- the one choke point ------------------------------------------------------------------------

    def _client(self, operation: str) -> AsyncStream:
        if self._sdk is None:
            if not self.api_key or not self._api_secret:
                raise StreamRequestError("Stream API key and secret are not configured", operation=operation)
            # connect_timeout too: the SDK's default of 10 s would outlive every deadline we have. The transport
            # is ours (stream/pool.py): httpcore's pool costs more per call the more connections it holds.
            transport = StackTransport(max_connections=MAX_CALLS_IN_FLIGHT, keepalive_expiry=KEEPALIVE_S)
            self._sdk = AsyncStream(
                api_key=self.api_key,
                api_secret=self._api_secret,
                base_url=self.base_url,
                timeout=self.timeout_s,
                connect_timeout=self.timeout_s,
                transport=transport,
            )
            # The SDK client's auth, headers, query and timeouts, taken once: calls go straight to the pool.
            self._endpoint = Endpoint.of(self._sdk.client, transport.pool)
        return self._sdk

    def _prepared(self, operation: str) -> Endpoint:
        self._client(operation)
        assert self._endpoint is not None
        return self._endpoint

    async def _call(self, operation: str, send: Send, *, batch_ids: list[str] | None = None) -> Answer:
        http = self._prepared(operation)  # the SDK client's auth, headers and timeouts over our pool
        self.calls += 1
        count = _COUNT.get()
        while count is not None:
            count.calls += 1
            count = count.outer
        started = time.perf_counter()
        try:
            response = await send(http)
        except StreamApiException as exc:
            error = from_api_exception(operation, exc, batch_ids)
            if exc.rate_limit_info is not None:
                self.rate_limits[operation] = exc.rate_limit_info
            record(operation, error, exc.rate_limit_info, started)
            raise error from exc
        except (StreamTransportException, httpx.HTTPError) as exc:
            kind = getattr(exc, "error_type", type(exc).__name__)
            error = StreamUnavailable(f"transport error ({kind}): {exc.__cause__ or exc}", operation=operation)
            record(operation, error, None, started)
            raise error from exc
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # The answer could not be read as the SDK's model (it parses strictly); no retry will change that.
            error = StreamRequestError(f"unexpected answer from Stream: {exc!r}", operation=operation)
            record(operation, error, None, started)
            raise error from exc
        if response.limits is not None:
            self.rate_limits[operation] = response.limits
        record(operation, None, response.limits, started)
        return response


def _record_rate_limit(operation: str, info: Any) -> None:
    """The x-ratelimit-remaining/limit/reset headers of the answer, as gauges per operation."""
    remaining = getattr(info, "remaining", None)
    if remaining is not None:
        metrics.STREAM_RATE_LIMIT_REMAINING.labels(operation).set(remaining)
    limit = getattr(info, "limit", None)
    if limit is not None:
        metrics.STREAM_RATE_LIMIT_LIMIT.labels(operation).set(limit)
    reset = getattr(info, "reset", None)
    if reset is not None:
        metrics.STREAM_RATE_LIMIT_RESET.labels(operation).set(reset.timestamp())


def record(operation: str, error: StreamError | None, rate_limit: Any, started: float) -> None:
    outcome = "ok" if error is None else OUTCOMES.get(type(error), "rejected")
    metrics.STREAM_CALLS.labels(operation, outcome).inc()
    if error is not None and error.status in (401, 403):
        metrics.STREAM_AUTH_FAILURES.labels(operation).inc()
    _record_rate_limit(operation, rate_limit)
    ms = round((time.perf_counter() - started) * 1000, 2)
    if error is None:
        log.debug("stream.call", operation=operation, outcome=outcome, ms=ms)
    else:
        log.info("stream.call", operation=operation, outcome=outcome, ms=ms, status=error.status, code=error.code)


OUTCOMES = {
    StreamUnavailable: "unavailable",
    StreamRateLimited: "rate_limited",
    StreamUsersMissing: "users_missing",
    StreamBatchError: "batch_refused",
    StreamRequestError: "rejected",
}
