"""Self-healing on the read paths: finish provisioning within the request's deadline, or leave it to the worker."""

from __future__ import annotations

import time

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.conversations.serialize import ordered_participants
from onecrew_chat.errors import ServiceUnavailable
from onecrew_chat.identity import Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation
from onecrew_chat.outbox import worker
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.errors import DeadlineExceeded, StreamError, StreamTransientError, StreamUsersMissing
from onecrew_chat.sync.channels import READY, finish_provisioning, is_provisioned, provision_deadline
from onecrew_chat.sync.handlers import FAILED, enqueue_provision

log = get_logger(__name__)

# The name sync.channels.lock_for_provisioning gives its wait for the conversation row (another run holds it).
ROW_WAIT = "LockConversation"


async def heal(session: AsyncSession, runtime: Runtime, conversation: Conversation, *, retry_failed: bool) -> None:
    """Finish provisioning unless our records say it is done (then no Stream call), all within one request deadline.

    Concurrent runs take turns on the conversation row within ONECREW_PROVISION_DEADLINE_S; one still waiting at the
    deadline leaves `chat_status` as stored and the job to the run holding the row (a create and the worker have
    their outbox row; a read path queues one when it fails). When Stream is slow or down the work is queued for the
    worker (`enqueue_provision`, which also puts a `failed` conversation back to `provisioning` with a fresh row).
    A `failed` conversation is tried inline only with `retry_failed` (prepare); otherwise it is queued at once.
    Raises StreamError when Stream refuses the request (after queueing nothing).
    """
    if is_provisioned(conversation):
        return
    if conversation.chat_status == FAILED and not retry_failed:
        await leave_to_worker(session, runtime, conversation)
        return
    deadline = provision_deadline(runtime.settings.provision_deadline_s)
    started = time.perf_counter()
    adopted = conversation.chat_status == READY
    try:
        # Participants of adopted channels may predate our directory: Stream users that exist are kept as they are.
        healed = await finish_provisioning(
            session, runtime.stream, conversation, deadline=deadline, placeholder_ok=True
        )
    except (StreamTransientError, StreamUsersMissing) as exc:
        if isinstance(exc, DeadlineExceeded) and exc.operation == ROW_WAIT:
            log.info("conversation.heal_busy", channel_id=conversation.channel_id, status=conversation.chat_status)
            return
        log.warning("conversation.heal_deferred", channel_id=conversation.channel_id, error=str(exc)[:300])
        await leave_to_worker(session, runtime, conversation)
        return
    if healed:
        log.info(
            "conversation.healed",
            channel_id=conversation.channel_id,
            adopted=adopted,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )


async def leave_to_worker(session: AsyncSession, runtime: Runtime, conversation: Conversation) -> None:
    """Queue the conversation's provisioning row (fresh if it had failed) and wake the worker once it is committed."""
    await enqueue_provision(session, conversation)
    event.listen(session.sync_session, "after_commit", lambda _session: worker.kick(runtime), once=True)


async def heal_quietly(session: AsyncSession, runtime: Runtime, conversation: Conversation) -> None:
    """heal() for GET by id: never retries a failed conversation inline, and never fails because Stream did.

    A refusal is logged and the work queued, so that the worker (not every open of the chat) meets it again.
    """
    try:
        await heal(session, runtime, conversation, retry_failed=False)
    except StreamError as exc:
        log.error("conversation.heal_failed", channel_id=conversation.channel_id, error=str(exc)[:300])
        await leave_to_worker(session, runtime, conversation)


async def prepare(session: AsyncSession, runtime: Runtime, conversation: Conversation) -> dict:
    """`{id, chat_status, members}` after making sure the channel and its members exist (503 if Stream refuses).

    The app's explicit self-heal: a `failed` conversation is tried inline once more before it is queued.
    """
    try:
        await heal(session, runtime, conversation, retry_failed=True)
    except StreamError as exc:
        log.error("conversation.prepare_failed", channel_id=conversation.channel_id, error=str(exc)[:300])
        raise ServiceUnavailable(f"Stream refused to prepare the channel: {exc}", code="stream_request_failed") from exc
    return {
        "id": conversation.channel_id,
        "chat_status": conversation.chat_status,
        "members": [Identity(p.participant_type, p.participant_id).stream_id for p in ordered_participants(conversation)],
    }
