"""Stream's client connection: the `/connect` WebSocket endpoint (hub.py holds the open connections).

A client SDK dials `/connect?json=...&api_key=...&authorization=<user token>&stream-auth-type=jwt`.
The first frame it gets is a `health.check` event carrying `connection_id` and `me` (the connected
user); after that it gets the events of the channels it watches and its own notifications, and a
`health.check` answer to each of its own. REST calls that carry `?connection_id=` (with
`"watch": true`) make that connection a watcher of the channels they return.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

from .clock import now_ns, rfc3339
from .emulator import Emulator
from .errors import AUTHENTICATION, INPUT, StreamError, envelope
from .handlers import sessions
from .hub import CLOSE, Connection

# What the error envelope of a refused connection names as its operation.
CONNECT = "Connect"
# Close codes: 1000 after an error frame (the SDK then gives up: the token or payload is bad),
# 1012 when the emulator drops connections on purpose (the SDK reconnects, as after a restart).
CLOSE_REFUSED = 1000
CLOSE_RESTART = 1012


def _connect_payload(query: dict[str, str]) -> dict:
    raw = query.get("json")
    if not raw:
        raise StreamError(INPUT, "the json query parameter with the connect payload is required")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise StreamError(INPUT, "the json query parameter is not valid JSON") from None
    if not isinstance(payload, dict):
        raise StreamError(INPUT, "the json query parameter must be a JSON object")
    return payload


def health_check(connection: Connection, me: dict | None = None) -> dict:
    """The health.check event; the first one of a connection carries `me`."""
    event: dict[str, Any] = {
        "type": "health.check",
        "connection_id": connection.id,
        "cid": "*",
        "created_at": rfc3339(now_ns()),
    }
    if me is not None:
        event["me"] = me
    return event


async def serve(emulator: Emulator, scope: dict, receive: Any, send: Any) -> None:
    """Serve one WebSocket at /connect until either side closes it."""
    if (await receive())["type"] != "websocket.connect":
        return
    if scope["path"].rstrip("/") != "/connect":
        await send({"type": "websocket.close", "code": 1008, "reason": f"{scope['path']} is not a WebSocket endpoint"})
        return
    query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    await send({"type": "websocket.accept"})
    try:
        caller = emulator.authenticator.authenticate(
            query.get("api_key"), query.get("stream-auth-type"), query.get("authorization")
        )
        payload = _connect_payload(query)
        if caller.user_id is None:
            raise StreamError(AUTHENTICATION, "a WebSocket connection needs a user token (one with a user_id claim)")
        if payload.get("user_id") != caller.user_id:
            raise StreamError(
                AUTHENTICATION,
                f"the connect payload's user_id {payload.get('user_id')!r} does not match the token's user_id "
                f"{caller.user_id!r}",
            )
        loop = asyncio.get_running_loop()
        with emulator.lock:
            connection, came_online, me = sessions.open_session(
                emulator, caller.user_id, payload.get("user_details"), loop
            )
    except StreamError as error:
        await send({"type": "websocket.send", "text": json.dumps({"error": envelope(CONNECT, error, "0.00ms")})})
        await send({"type": "websocket.close", "code": CLOSE_REFUSED, "reason": _reason(error.detail)})
        return
    try:
        await send({"type": "websocket.send", "text": json.dumps(health_check(connection, me))})
        if came_online:
            with emulator.lock:
                sessions.presence(emulator, connection.user_id)
        await _pump(emulator, connection, receive, send)
    finally:
        with emulator.lock:
            sessions.close_session(emulator, connection)


async def _pump(emulator: Emulator, connection: Connection, receive: Any, send: Any) -> None:
    """Forward queued events and answer the client's health checks until one side closes."""

    async def read() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
            if _is_health_check(text):
                connection.send(health_check(connection))

    reader = asyncio.ensure_future(read())
    try:
        while not reader.done():
            waiter = asyncio.ensure_future(connection.next(emulator.health_check_interval_s))
            done, _ = await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                break
            frame = waiter.result()
            if frame is CLOSE:
                await send({"type": "websocket.close", "code": CLOSE_RESTART, "reason": "the emulator dropped it"})
                break
            text = frame if frame is not None else json.dumps(health_check(connection))
            await send({"type": "websocket.send", "text": text})
    finally:
        reader.cancel()


def _reason(detail: str) -> str:
    """A close reason within the protocol's 123 bytes (the full text is in the error frame)."""
    encoded = detail.encode("utf-8")
    return detail if len(encoded) <= 123 else encoded[:120].decode("utf-8", "ignore") + "..."


def _is_health_check(text: str) -> bool:
    """Whether a client frame is the SDK's `[{"type": "health.check", ...}]` ping."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    items = value if isinstance(value, list) else [value]
    return any(isinstance(i, dict) and i.get("type") == "health.check" for i in items)
