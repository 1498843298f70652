"""The main backend's two server-side duties: ensure a conversation for an identity, send a message as a participant.

`ensure_conversation` calls the app's create (`create.create_conversation`) unchanged, so it has every guarantee
of it: a pair's one conversation (its adopted old channel included) whatever the direction, every member in the
channel when it answers, `provisioning` finished by the worker when Stream is slow. Acting as a company goes
through one of its accepted owners or admins, as the app's own create does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from onecrew_chat.conversations.create import Binder, Created, create_conversation
from onecrew_chat.conversations.lookup import find_conversation
from onecrew_chat.conversations.request import CreateConversationRequest
from onecrew_chat.db import unit_of_work
from onecrew_chat.errors import Conflict, NotFound, StreamFailed, Unprocessable
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Company, CompanyMember, OutboxMessage
from onecrew_chat.outbox import maintenance
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.errors import StreamError, StreamTransientError, is_auth_failure
from onecrew_chat.sync.channels import is_provisioned
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.participants import ACCEPTED, ACTING_ROLES
from onecrew_chat.sync.queue import enqueue_provision
from onecrew_chat.sync.server_messages import SEND_MESSAGE, dedupe_key, find_sent, send_to_stream

log = get_logger(__name__)

INLINE_GRACE_S = 2.0  # the worker leaves a fresh row alone this long past the inline attempt's deadline


class Delivery(StrEnum):
    """Where a server-side message stands when the request ends."""

    SENT = "sent"  # Stream has it
    QUEUED = "queued"  # the outbox worker delivers it (the channel is being provisioned, or Stream is down or busy)


@dataclass(frozen=True)
class ServerMessage:
    """What became of a server-side message: its id, the channel id, the sender's Stream id, where it stands."""

    id: str
    conversation_id: str
    sender: str
    delivery: Delivery


async def company_agent(runtime: Runtime, company_id: str) -> str:
    """An accepted owner (else admin) of the company, in whose name the app's create acts as the company."""
    async with runtime.sessionmaker() as session:
        if await session.get(Company, company_id) is None:
            raise NotFound(f"Company not found: {company_id}", code="company_not_found")
        rows = await session.execute(
            select(CompanyMember.user_id, CompanyMember.role).where(
                CompanyMember.company_id == company_id,
                CompanyMember.role.in_(ACTING_ROLES),
                CompanyMember.invitation_status == ACCEPTED,
            )
        )
        managers = sorted(rows, key=lambda row: (ACTING_ROLES.index(row.role), row.user_id))
    if not managers:
        raise Unprocessable(
            f"Company {company_id} has no accepted owner or admin in the directory, so nobody can act as it",
            code="company_without_manager",
        )
    agent: str = managers[0].user_id
    return agent


async def ensure_conversation(
    runtime: Runtime,
    acting: Identity,
    request: CreateConversationRequest,
    *,
    bind: Binder | None = None,
    resume_id: str | None = None,
) -> Created:
    """The app's create as `acting` (its `company_id` is the acting company, or none for a user); `bind` and
    `resume_id` as for the app's keyed create."""
    if acting.kind is Kind.USER:
        user_id, company_id = acting.entity_id, None
    else:
        user_id, company_id = await company_agent(runtime, acting.entity_id), acting.entity_id
    keyed = request.model_copy(update={"company_id": company_id})
    return await create_conversation(runtime, user_id, keyed, bind=bind, resume_id=resume_id)


def _outcome(payload: dict[str, Any], delivery: Delivery) -> ServerMessage:
    return ServerMessage(payload["message_id"], payload["channel_id"], payload["sender"], delivery)


async def record_message(
    runtime: Runtime, conversation_id: str, sender: Identity, message_id: str, text: str, custom: dict[str, Any]
) -> tuple[dict[str, Any], OutboxMessage | None, ServerMessage | None]:
    """First unit of work: check, then find the earlier send of this id or queue a new one; (payload, row, outcome
    of the earlier send)."""
    async with unit_of_work(runtime.sessionmaker) as session:
        conversation = await find_conversation(session, conversation_id)
        if (sender.kind.value, sender.entity_id) not in {
            (p.participant_type, p.participant_id) for p in conversation.participants
        }:
            raise Unprocessable(
                f"The sender {sender.kind.value} {sender.entity_id} does not take part in conversation {conversation.channel_id}",
                code="sender_not_participant",
            )
        payload = {
            "channel_type": conversation.channel_type,
            "channel_id": conversation.channel_id,
            "message_id": message_id,
            "sender": sender.stream_id,
            "text": text,
            "custom": custom,
        }
        earlier = await find_sent(session, message_id)
        if earlier is not None:
            if dict(earlier.payload) != payload:
                raise Conflict(
                    f"Message id {message_id} was already used for another message; choose a new id",
                    code="message_id_reused",
                )
            if earlier.status == outbox.DEAD:
                await maintenance.requeue(session, [earlier.id])
            return payload, None, _outcome(payload, Delivery.SENT if earlier.status == outbox.DONE else Delivery.QUEUED)
        ready = is_provisioned(conversation)
        if not ready:
            await enqueue_provision(session, conversation)
        delay = runtime.settings.provision_deadline_s + INLINE_GRACE_S if ready else 0.0
        row = await outbox.add(session, SEND_MESSAGE, payload, dedupe_key=dedupe_key(message_id), delay_s=delay)
        return payload, (row if ready else None), None


async def send_message(
    runtime: Runtime, conversation_id: str, sender: Identity, message_id: str, text: str, custom: dict[str, Any]
) -> ServerMessage:
    """Send a message as `sender`: SENT when Stream has it, QUEUED when the worker will send it; 409 for an id
    reused for another message, 502 when Stream refuses it."""
    started = time.perf_counter()
    payload, row, earlier = await record_message(runtime, conversation_id, sender, message_id, text, custom)
    if earlier is not None:
        return earlier
    if row is None:  # the channel is still being provisioned: the worker sends after it
        outbox.kick(runtime)
        return _outcome(payload, Delivery.QUEUED)
    try:
        await send_to_stream(runtime.stream, payload, Deadline(runtime.settings.provision_deadline_s))
    except StreamError as exc:
        if not (isinstance(exc, StreamTransientError) or is_auth_failure(exc)):  # Stream refuses this message
            async with unit_of_work(runtime.sessionmaker) as session:
                await outbox.give_up(session, row, f"{type(exc).__name__}: {exc}")
            raise StreamFailed(f"Stream refused the message: {exc}") from exc
        # Stream down or busy, or refusing our secret (the worker pauses and sends it once the secret is fixed).
        log.warning("message.send_deferred", message_id=message_id, error=str(exc)[:300])
        await outbox.hand_over(runtime, row.id)
        return _outcome(payload, Delivery.QUEUED)
    async with unit_of_work(runtime.sessionmaker) as session:
        await outbox.mark_done(session, row)
    log.info(
        "message.server_sent",
        message_id=message_id,
        channel_id=payload["channel_id"],
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return _outcome(payload, Delivery.SENT)
