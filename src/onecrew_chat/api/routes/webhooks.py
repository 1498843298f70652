"""POST /api/chat/webhooks/stream: Stream's signed event deliveries."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from onecrew_chat.api.deps import RuntimeDep
from onecrew_chat.api.lean import LeanRoute, runtime_of, served_by
from onecrew_chat.api.openapi import error_responses, json_body
from onecrew_chat.api.schemas import StreamWebhookEvent, WebhookEnvelope
from onecrew_chat.conversations.unread import unread_cache
from onecrew_chat.conversations.unread_broadcast import announce_unread_change
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import WEBHOOK_EVENTS
from onecrew_chat.runtime import Runtime
from onecrew_chat.webhooks.apply import HANDLED, apply_event
from onecrew_chat.webhooks.body import signed_body, verify_signature
from onecrew_chat.webhooks.events import parse_event, webhook_id

router = APIRouter(tags=["webhooks"], route_class=LeanRoute)
log = get_logger(__name__)

# Where Stream delivers: this route, its body limit (api/request_guard.py), the URL `stream configure` sets and the
# one the embedded emulator delivers to.
WEBHOOK_PATH = "/api/chat/webhooks/stream"


async def _webhook_lean(request: Request) -> JSONResponse:
    """The webhook served by api.lean: the declared endpoint's headers, read directly."""
    headers = request.headers
    data = await _receive(request, runtime_of(request), headers.get("x-signature"), headers.get("x-webhook-id"))
    return JSONResponse({"success": True, "data": data})


@router.post(
    WEBHOOK_PATH,
    summary="Receive Stream webhook events (X-Signature checked)",
    response_model=None,
    responses={200: {"model": WebhookEnvelope}, **error_responses(400, 401, 413, 415)},
    openapi_extra=json_body(StreamWebhookEvent),
)
@served_by(_webhook_lean)
async def stream_webhook(
    request: Request,
    runtime: RuntimeDep,
    x_signature: Annotated[
        str | None, Header(description="Hex HMAC-SHA256 of the raw body keyed with STREAM_API_SECRET")
    ] = None,
    x_webhook_id: Annotated[str | None, Header(description="Stream's event id; a repeated id changes nothing")] = None,
) -> dict[str, Any]:
    """401 without a valid signature; a repeated X-Webhook-Id is answered 200 and changes nothing.

    With `Content-Encoding: gzip` (the Stream app's enable_hook_payload_compression) the body is decompressed first,
    at most 8 MiB, and the signature checked over the JSON; broken gzip is 400, another encoding 415.
    """
    return {"success": True, "data": await _receive(request, runtime, x_signature, x_webhook_id)}


async def _receive(
    request: Request, runtime: Runtime, x_signature: str | None, x_webhook_id: str | None
) -> dict[str, Any]:
    started = time.perf_counter()
    secret = runtime.settings.stream_api_secret
    if not x_signature:  # nothing to check a body against: refused before any decompression
        verify_signature(b"", x_signature, secret.get_secret_value() if secret else None)
    body = signed_body(await request.body(), request.headers.get("content-encoding"))
    verify_signature(body, x_signature, secret.get_secret_value() if secret else None)
    event = parse_event(body)
    event_id = webhook_id(x_webhook_id, body)
    # The unit of work is committed before the cache is invalidated, so no stale count can be cached after it;
    # other processes hear of it on the same commit (PostgreSQL NOTIFY, sent inside the transaction).
    async with runtime.sessionmaker.begin() as session:
        outcome = await apply_event(session, event, event_id)
        if outcome.affected and not outcome.announced:
            await announce_unread_change(session, outcome.affected)
    unread_cache(runtime).invalidate(outcome.affected)
    WEBHOOK_EVENTS.labels(type=event.type if event.type in HANDLED else "other", outcome=outcome.status).inc()
    log.info(
        "webhook.received",
        type=event.type,
        webhook_id=event_id,
        channel_id=event.channel_id,
        outcome=outcome.status,
        reason=outcome.reason,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return {"webhook_id": event_id, "type": event.type, "status": outcome.status, "reason": outcome.reason}
