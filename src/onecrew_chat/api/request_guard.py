"""Refusing, before any route runs, what no route can store: oversized bodies and text databases reject.

PostgreSQL cannot store the NUL character in text, and neither database (nor the JSON encoder) accepts a
lone UTF-16 surrogate such as the JSON escape `\\ud800`. Any of them in a body or query parameter would
otherwise surface as a 500 deep inside a route, so they are answered here with a 400 naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onecrew_chat.api.errors import error_body
from onecrew_chat.api.routes.webhooks import WEBHOOK_PATH
from onecrew_chat.webhooks.body import MAX_WEBHOOK_BODY_BYTES

MAX_BODY_BYTES = 1024 * 1024
# Stream's webhook deliveries embed channel and member objects, so they get more room (and the same limit holds
# for a gzip delivery once decompressed: webhooks/body.py).
BODY_LIMITS = {WEBHOOK_PATH: MAX_WEBHOOK_BODY_BYTES}
# The bulk directory PUTs take 1,000 rows, each up to ~2.4 KB (a 2,048-character URL and a 255-character name).
BODY_LIMITS.update(dict.fromkeys(("/api/internal/users", "/api/internal/companies", "/api/internal/members"), 4 << 20))
# What Stream delivers is Stream's data, not a client's mistake: refusing it would lose the event, so the
# webhook code repairs the text it stores (webhooks/text.py) instead of being screened here.
UNSCREENED = frozenset({WEBHOOK_PATH})

# A `\u0000` or surrogate escape not itself escaped; only bodies that contain one are decoded and searched.
_SUSPECT_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
NUL_WORDS = "must not contain the NUL character (\\u0000)"
SURROGATE_WORDS = "must be valid Unicode text (it contains an unpaired surrogate escape such as \\ud800)"


def _problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL_WORDS
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_WORDS
    return None


def _strings(value: object) -> Iterator[tuple[str, str]]:
    """Every (field path, string) in a decoded JSON value, object keys included (iterative: any depth)."""
    pending: list[tuple[str, object]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            yield path, item
        elif isinstance(item, dict):
            for key, child in item.items():
                field = f"{path}.{key}" if path else str(key)
                yield field, str(key)
                pending.append((field, child))
        elif isinstance(item, list):
            pending.extend((f"{path}[{position}]", child) for position, child in enumerate(item))


def body_problem(body: bytes) -> str | None:
    """A sentence naming the field of a JSON body that holds a NUL or an unpaired surrogate, else None."""
    if not _SUSPECT_ESCAPE.search(body):
        return None
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON (or nested too deep to read): the route says so in its own words
    for field, text in _strings(payload):
        problem = _problem(text)
        if problem:
            return f"{_shown(field) or 'Request body'} {problem}"
    return None


def _shown(field: str) -> str:
    """A field path safe to put in a JSON answer: escapes instead of NULs and surrogates, at most 100 characters."""
    shown = field.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
    return shown if len(shown) <= 100 else shown[:100] + "..."


def query_problem(query_string: bytes) -> str | None:
    """A sentence naming the query parameter that holds a NUL, else None (undecodable bytes become U+FFFD)."""
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return f"Query parameter {name.replace(chr(0), '') or '(unnamed)'!r} {NUL_WORDS}"
    return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestGuard:
    """ASGI middleware: 413 above the body limit, 400 for NULs and unpaired surrogates, then the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer the body (bounded), screen it, and hand the app an identical stream."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = BODY_LIMITS.get(path, MAX_BODY_BYTES)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse_size(scope, receive, send, limit, declared)
            return
        problem = query_problem(scope.get("query_string", b""))
        if problem:
            await JSONResponse(error_body(problem, "invalid_text"), status_code=400)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse_size(scope, receive, send, limit, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = None if path in UNSCREENED else body_problem(body)
        if problem:
            await JSONResponse(error_body(problem, "invalid_text"), status_code=400)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _refuse_size(scope: Scope, receive: Receive, send: Send, limit: int, declared: int | None) -> None:
        size = f" ({declared:,} bytes)" if declared is not None else ""
        words = f"Request body is too large{size}; at most {limit:,} bytes are accepted"
        await JSONResponse(error_body(words, "body_too_large"), status_code=413)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that gives the buffered body once, then whatever the server sends next (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
