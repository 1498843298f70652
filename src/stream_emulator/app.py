"""The ASGI application: auth, faults, routing, rendering and the request log around handlers."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from . import admin, realtime
from . import operations as op
from .call import Call
from .emulator import Emulator
from .errors import INTERNAL, NOT_ALLOWED, RATE_LIMIT, StreamError, envelope, input_error
from .faults import Faults
from .handlers import uploads
from .ratelimit import headers as rate_header_values
from .requestlog import RequestRecord
from .router import Router, split_path

log = logging.getLogger("stream_emulator")
_ROUTER = Router()
_RATE_LIMIT_MESSAGE = "Too many requests, check response headers for more information."


class EmulatorApp:
    """An ASGI callable serving one Emulator; `state.emulator` is that Emulator."""

    def __init__(self, emulator: Emulator, enable_admin: bool = False) -> None:
        self.emulator = emulator
        self.enable_admin = enable_admin
        self.state = _AppState(emulator)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await realtime.serve(self.emulator, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.emulator.load()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.emulator.hub.drop()
                self.emulator.flush()
                await self.emulator.webhooks.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive: Any, send: Any) -> None:
        emu = self.emulator
        emu.in_flight += 1
        emu.max_in_flight = max(emu.max_in_flight, emu.in_flight)
        try:
            await self._serve(scope, receive, send)
        finally:
            emu.in_flight -= 1

    async def _serve(self, scope: dict, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        emu = self.emulator
        generation = emu.generation
        method, path = scope["method"], scope["path"]
        body = await _read_body(receive)
        if self.enable_admin and path.startswith("/_emulator"):
            status, result = await admin.handle(emu, method, path, body)
            await _respond(send, status, json.dumps(result).encode(), [])
            return
        if method == "GET" and path.startswith(uploads.UPLOADS_PATH):
            found = uploads.served(emu.state.uploads, path)
            if found is None:
                await _respond(send, 404, b'{"error": "no such upload"}', [])
            else:
                await _respond(send, 200, found[1], [], content_type=found[0].encode("latin-1"))
            return
        dialect_name, segments = split_path(path)
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        route = _ROUTER.match(method, segments)
        operation = route[0] if route else op.UNKNOWN
        faults = emu.faults
        reset_at: float | None = None
        hold_s: float | None = None
        rate_headers: list[tuple[bytes, bytes]] | None = None
        try:
            if faults.active and (delay := faults.delay_s()):
                await asyncio.sleep(delay)
            auth_type = token = None
            content_type = host = ""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    token = value.decode("latin-1")
                elif name == b"stream-auth-type":
                    auth_type = value.decode("latin-1")
                elif name == b"content-type":
                    content_type = value.decode("latin-1")
                elif name == b"host":
                    host = value.decode("latin-1")
            caller = emu.authenticator.authenticate(query.get("api_key"), auth_type, token)
            if route is None:
                raise StreamError(16, f"{method} {path} is not served by the stream emulator", status=404)
            if not caller.is_server and operation not in op.CLIENT_ALLOWED:
                raise StreamError(NOT_ALLOWED, "this operation is only allowed with server side auth")
            allowed, rate_headers = emu.rate_limiter.take(operation, "server" if caller.is_server else "client")
            if not allowed:
                raise StreamError(RATE_LIMIT, _RATE_LIMIT_MESSAGE)
            if faults.active:
                reset_at = faults.take_burst(operation)
                if reset_at is not None:
                    raise StreamError(RATE_LIMIT, _RATE_LIMIT_MESSAGE)
                failure = faults.draw_error(operation)
                if failure is not None and failure.body is not None:  # a gateway's own words, not Stream's
                    if emu.generation == generation:
                        elapsed_ms = (time.perf_counter() - started) * 1000.0
                        emu.log.add(RequestRecord(operation, dialect_name, method, path, failure.status, elapsed_ms))
                    await _respond(send, failure.status, json.dumps(failure.body).encode(), [])
                    return
                if failure is not None:
                    raise StreamError(INTERNAL, "internal server error (injected fault)", status=failure.status)
            files = None
            if content_type.startswith("multipart/form-data"):
                parsed, files = _parse_multipart(content_type, body)
            else:
                parsed = _parse_json(body)
            dialect = emu.v2 if dialect_name == "v2" else emu.v1
            base_url = f"{scope.get('scheme', 'http')}://{host or '127.0.0.1'}"
            call = Call(emu, dialect, method, route[2], query, parsed, caller, operation, files, base_url)
            with emu.lock:
                if emu.generation != generation:
                    raise StreamError(INTERNAL, "the emulator was reset while this call was in flight", status=503)
                result = route[1](call)
                if operation in op.MUTATING:
                    emu.mark_dirty()
            status = 201 if method in ("POST", "PUT") else 200
            if faults.active:
                hold_s = faults.take_hold(operation)
        except StreamError as error:
            status = error.status
            result = envelope(operation, error, "")
        except Exception:  # the SDK must see Stream's 500 envelope, never a bare traceback
            log.exception("stream_emulator.handler_failed", extra={"operation": operation})
            status = 500
            result = envelope(operation, StreamError(INTERNAL, "internal server error", status=500), "")
        if hold_s is not None:
            await _hold(receive, hold_s)
            if emu.generation == generation:
                emu.log.add(
                    RequestRecord(operation, dialect_name, method, path, 0, (time.perf_counter() - started) * 1000.0)
                )
            return
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        result["duration"] = f"{elapsed_ms:.2f}ms"
        if reset_at is not None:
            headers = rate_headers_for(operation, 0, int(reset_at + 0.999))
        elif rate_headers is not None:
            headers = rate_headers
        else:
            headers = emu.rate_limiter.take(operation, "server", count=False)[1]
        # Logged before the response goes out, so a caller that counts calls right after its
        # own call returns always sees it.
        if emu.generation == generation:
            emu.log.add(RequestRecord(operation, dialect_name, method, path, status, elapsed_ms))
        await _respond(send, status, json.dumps(result).encode(), headers)


class _AppState:
    """What Starlette-style code expects at `app.state`."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator


async def _read_body(receive: Any) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


def _parse_json(body: bytes) -> dict:
    if not body:
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        raise input_error("request body is not valid JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise input_error("request body must be a JSON object")
    return value


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict, dict[str, tuple[str, str, bytes]]]:
    """The text fields (as a JSON-like dict) and the file fields of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise input_error("request body is not valid multipart/form-data")
    fields: dict[str, Any] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


async def _respond(
    send: Any,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    content_type: bytes = b"application/json",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _hold(receive: Any, seconds: float) -> None:
    """Keep the response back until the client hangs up or `seconds` pass."""

    async def hung_up() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(hung_up(), seconds)
    except TimeoutError:
        pass


def rate_headers_for(operation: str, remaining: int, reset: int) -> list[tuple[bytes, bytes]]:
    """The rate-limit headers of a 429 fault burst: nothing remaining until `reset`."""
    return rate_header_values(op.RATE_LIMITS.get(operation, op.DEFAULT_RATE_LIMIT), remaining, reset)


def create_app(
    api_key: str = "key",
    api_secret: str = "secret",
    faults: Faults | None = None,
    state_file: Path | str | None = None,
    enable_admin: bool = False,
    rate_limits: bool = False,
) -> EmulatorApp:
    """An ASGI app over a new Emulator (reachable as `app.state.emulator`)."""
    emulator = Emulator(
        api_key=api_key, api_secret=api_secret, state_file=state_file, faults=faults, rate_limits=rate_limits
    )
    return EmulatorApp(emulator, enable_admin=enable_admin)
