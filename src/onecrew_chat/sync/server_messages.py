"""Server-side messages (the old backend's course-registration message): queued in the outbox, sent as a participant.

The outbox row (kind `message.send`, dedupe key = the caller's message id) is the record that makes a send
idempotent: the same id again answers from the row; Stream refusing an id it already has counts as sent (an
earlier attempt's write landed). A conversation whose channel is not provisioned yet gets its provisioning
queued and the message waits for it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from onecrew_chat.db import unit_of_work
from onecrew_chat.identity import Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation, OutboxMessage
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.errors import StreamRequestError
from onecrew_chat.sync.channels import is_provisioned
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.queue import enqueue_provision

log = get_logger(__name__)

SEND_MESSAGE = "message.send"


class ChannelNotReady(Exception):
    """The conversation's channel is not provisioned yet: the worker tries the message again later."""


def dedupe_key(message_id: str) -> str:
    """The outbox dedupe key of a message id (Stream's message ids are unique per app)."""
    return f"{SEND_MESSAGE}:{message_id}"


def is_already_sent(error: StreamRequestError) -> bool:
    """Stream refusing a message id it already has: the message is there."""
    return "already exists" in error.message.lower()


async def find_sent(session: AsyncSession, message_id: str) -> OutboxMessage | None:
    """The row of an earlier send with this message id, if any (newest first)."""
    return await session.scalar(
        select(OutboxMessage)
        .where(OutboxMessage.kind == SEND_MESSAGE, OutboxMessage.dedupe_key == dedupe_key(message_id))
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )


async def send_to_stream(stream: StreamGateway, payload: dict[str, Any], deadline: Deadline) -> bool:
    """Send the message (retried by error class within the deadline); True when sent now, False when it was there."""
    try:
        await deadline.run(
            lambda: stream.send_message(
                payload["channel_type"],
                payload["channel_id"],
                message_id=payload["message_id"],
                user_id=payload["sender"],
                text=payload["text"],
                custom=payload.get("custom") or None,
            ),
            name="SendMessage",
        )
    except StreamRequestError as exc:
        if not is_already_sent(exc):
            raise
        log.info("message.already_in_stream", message_id=payload["message_id"], channel_id=payload["channel_id"])
        return False
    log.info(
        "message.sent", message_id=payload["message_id"], channel_id=payload["channel_id"], sender=payload["sender"]
    )
    return True


async def deliver(runtime: Runtime, payload: dict[str, Any]) -> None:
    """The worker's attempt: wait for the channel (its provisioning queued), then send with no transaction open."""
    async with unit_of_work(runtime.sessionmaker) as session:
        conversation = await session.scalar(
            select(Conversation)
            .where(
                Conversation.channel_id == payload["channel_id"], Conversation.channel_type == payload["channel_type"]
            )
            .options(selectinload(Conversation.participants))
        )
        if conversation is None:
            log.warning(
                "message.conversation_missing", channel_id=payload["channel_id"], message_id=payload["message_id"]
            )
            return
        ready = is_provisioned(conversation)
        if not ready:
            await enqueue_provision(session, conversation)  # committed with this block, before the retry is asked for
    if not ready:
        raise ChannelNotReady(f"channel {conversation.channel_id} is not provisioned yet")
    sender = Identity.parse(payload["sender"])
    if (sender.kind.value, sender.entity_id) not in {
        (p.participant_type, p.participant_id) for p in conversation.participants
    }:
        log.error("message.sender_left", channel_id=conversation.channel_id, sender=payload["sender"])
        return
    await send_to_stream(runtime.stream, payload, Deadline(runtime.settings.provision_deadline_s))
