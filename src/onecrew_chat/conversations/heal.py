"""Self-healing on the read paths: finish provisioning within the request's deadline, or leave it to the worker."""

from __future__ import annotations

import time
from dataclasses import dataclass

from onecrew_chat.conversations.lookup import find_visible_conversation
from onecrew_chat.db import unit_of_work
from onecrew_chat.errors import StreamFailed
from onecrew_chat.identity import ChatStatus
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.errors import StreamError, StreamTransientError, StreamUsersMissing
from onecrew_chat.sync.channels import ClaimBusy, finish, is_provisioned, provision_deadline
from onecrew_chat.sync.participants import Directory, load_directory_for
from onecrew_chat.sync.queue import enqueue_provision

log = get_logger(__name__)


async def heal(runtime: Runtime, conversation: Conversation, *, retry_failed: bool) -> None:
    """Finish provisioning unless our records say it is done (then no Stream call), all within one request deadline.

    Concurrent runs take turns on the conversation's claim within ONECREW_PROVISION_DEADLINE_S; one still waiting at
    the deadline leaves `chat_status` as stored and the job to the run holding the claim (a create and the worker
    have their outbox row; a read path queues one when it fails). When Stream is slow or down the work is queued
    for the worker (`enqueue_provision`, which also puts a `failed` conversation back to `provisioning` with a
    fresh row). A `failed` conversation is tried inline only with `retry_failed` (prepare); otherwise it is queued
    at once. Raises StreamError when Stream refuses the request (after queueing nothing).
    """
    if is_provisioned(conversation):
        return
    if conversation.chat_status == ChatStatus.FAILED and not retry_failed:
        await leave_to_worker(runtime, conversation)
        return
    deadline = provision_deadline(runtime.settings.provision_deadline_s)
    started = time.perf_counter()
    adopted = conversation.chat_status == ChatStatus.READY
    try:
        # Participants of adopted channels may predate our directory: Stream users that exist are kept as they are.
        await finish(runtime, conversation.id, deadline=deadline, placeholder_ok=True, caller_copy=conversation)
    except ClaimBusy:
        log.info("conversation.heal_busy", channel_id=conversation.channel_id, status=conversation.chat_status)
        return
    except (StreamTransientError, StreamUsersMissing) as exc:
        log.warning("conversation.heal_deferred", channel_id=conversation.channel_id, error=str(exc)[:300])
        await leave_to_worker(runtime, conversation)
        return
    log.info(
        "conversation.healed",
        channel_id=conversation.channel_id,
        adopted=adopted,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )


async def leave_to_worker(runtime: Runtime, conversation: Conversation) -> None:
    """Queue the conversation's provisioning row (fresh if it had failed) in a short transaction; wake the worker."""
    async with unit_of_work(runtime.sessionmaker) as session:
        session.add(conversation)
        await enqueue_provision(session, conversation)
    outbox.kick(runtime)


@dataclass(frozen=True)
class Opened:
    """A conversation opened by id, healed on the way, with the directory rows its participants' JSON shows."""

    conversation: Conversation
    directory: Directory


async def open_conversation(runtime: Runtime, user_id: str, conversation_id: str) -> Opened:
    """GET by id: the conversation (404 unless the caller takes part), healed on the way.

    Never retries a failed conversation inline, and never fails because Stream did: a refusal is logged and the
    work queued, so that the worker (not every open of the chat) meets it again.
    """
    async with unit_of_work(runtime.sessionmaker) as session:
        conversation = (await find_visible_conversation(session, user_id, conversation_id)).conversation
    try:
        await heal(runtime, conversation, retry_failed=False)
    except StreamError as exc:
        log.error("conversation.heal_failed", channel_id=conversation.channel_id, error=str(exc)[:300])
        await leave_to_worker(runtime, conversation)
    async with unit_of_work(runtime.sessionmaker) as session:
        directory = await load_directory_for(session, [conversation])
    return Opened(conversation, directory)


async def prepare(runtime: Runtime, user_id: str, conversation_id: str) -> Conversation:
    """The conversation after making sure the channel and its members exist (StreamFailed, 502, if Stream refuses,
    as create answers the same refusal).

    The app's explicit self-heal: a `failed` conversation is tried inline once more before it is queued.
    """
    async with unit_of_work(runtime.sessionmaker) as session:
        conversation = (await find_visible_conversation(session, user_id, conversation_id)).conversation
    try:
        await heal(runtime, conversation, retry_failed=True)
    except StreamError as exc:
        log.error("conversation.prepare_failed", channel_id=conversation.channel_id, error=str(exc)[:300])
        raise StreamFailed(f"Stream refused to prepare the channel: {exc}") from exc
    return conversation
