"""The outermost middleware of the app: a request id, server time and Stream calls on every answer, and a metric.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware, which runs the app in a task of its own and passes
the response through memory streams): it adds its headers to the response's start message as it goes by.
"""

from __future__ import annotations

import time
import uuid

import structlog
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import HTTP_REQUEST_SECONDS
from onecrew_chat.stream.client import counting_calls

log = get_logger(__name__)

# The headers this middleware sets (a header of the same name from the app is replaced, not duplicated).
_OWN_HEADERS = frozenset({b"x-request-id", b"server-timing", b"x-stream-calls"})
_UNMATCHED = "unmatched"
# Label sets kept per middleware (methods are the client's words: beyond this many, labels() is asked each time).
_MAX_KEPT_LABELS = 1000


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if value:
                given: str = value.decode("latin-1")
                return given
            break
    return uuid.uuid4().hex


class RequestContext:
    """X-Request-ID, Server-Timing (`app;dur=<ms to the response's start>`) and X-Stream-Calls on each answer.

    Binds `request_id` into structlog's context for everything logged during the request, observes
    HTTP_REQUEST_SECONDS by method, route template and status, and logs `http.request` at debug level.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._histograms: dict[tuple[str, str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, stamping the response's start message on its way out."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        answer: list[tuple[int, float, int]] = []  # (status, ms to the start of the response, Stream calls)
        with counting_calls() as stream_calls:  # the gateway counts this request's Stream calls

            async def send_stamped(message: Message) -> None:
                if message["type"] == "http.response.start":
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    calls = stream_calls.calls
                    answer.append((message["status"], elapsed_ms, calls))
                    headers = [header for header in message.get("headers", ()) if header[0] not in _OWN_HEADERS]
                    headers += (
                        (b"x-request-id", request_id.encode("latin-1")),
                        (b"server-timing", f"app;dur={elapsed_ms:.2f}".encode("latin-1")),
                        (b"x-stream-calls", str(calls).encode("latin-1")),
                    )
                    message = {**message, "headers": headers}
                await send(message)

            try:
                await self.app(scope, receive, send_stamped)
            except Exception:
                # Raised before an answer: Starlette's outermost handler answers 500 (without these headers, as it
                # did under BaseHTTPMiddleware); the metric counts it, for the 5xx alert.
                if not answer:
                    answer.append((500, (time.perf_counter() - started) * 1000, stream_calls.calls))
                raise
            finally:
                if answer:
                    self._observe(scope, *answer[0])

    def _observe(self, scope: Scope, status: int, elapsed_ms: float, calls: int) -> None:
        method = scope["method"]
        route = getattr(scope.get("route"), "path", _UNMATCHED)
        key = (method, route, status)
        child = self._histograms.get(key)
        if child is None:  # labels() takes a lock and builds its key each time: keep the child per label set
            child = HTTP_REQUEST_SECONDS.labels(method, route, str(status))
            if len(self._histograms) < _MAX_KEPT_LABELS:
                self._histograms[key] = child
        child.observe(elapsed_ms / 1000)
        log.debug(
            "http.request",
            method=method,
            path=scope["path"],
            status=status,
            ms=round(elapsed_ms, 2),
            stream_calls=calls,
        )
