"""Outbox work of the sync layer: finish a conversation's provisioning, push a changed profile to Stream.

Handlers take `(runtime, payload)` and open their own short transactions, so that no transaction or pooled
connection is held while they wait on Stream. Dead-letter handlers run in the transaction that gives up on a row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation
from onecrew_chat.sync.channels import Outcome, finish, provision_deadline
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import IdentityNotFound, sync_identities
from onecrew_chat.sync.queue import FAILED, IDENTITY_SYNC, PROVISION, READY

if TYPE_CHECKING:
    from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

__all__ = ["IDENTITY_SYNC", "PROVISION", "provision", "provisioning_failed", "sync_identity"]


async def provision(runtime: Runtime, payload: dict[str, Any]) -> None:
    """Get-or-create the channel with every member (safe to repeat); a conversation already ready is left alone."""
    conversation_id = str(payload["conversation_id"])
    deadline = provision_deadline(runtime.settings.provision_deadline_s)
    try:
        # Participants were accepted when the conversation was created; one the directory lost becomes a placeholder.
        outcome = await finish(runtime, conversation_id, deadline=deadline, placeholder_ok=True)
    except LookupError:
        log.warning("conversation.provision_missing", conversation_id=conversation_id)
        return
    if outcome is Outcome.PROVISIONED:
        log.info("conversation.provisioned_by_worker", conversation_id=conversation_id)


async def provisioning_failed(session: AsyncSession, payload: dict[str, Any], error: str) -> None:
    """The worker gave up: the conversation says `failed` (its reason stays on the dead row) until it is re-queued."""
    conversation_id = str(payload["conversation_id"])
    result = await session.execute(
        update(Conversation)
        .where(
            or_(Conversation.id == conversation_id, Conversation.channel_id == conversation_id),
            Conversation.chat_status != READY,
        )
        .values(chat_status=FAILED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount:
        log.error("conversation.provisioning_failed", conversation_id=conversation_id, error=error[:500])


async def sync_identity(runtime: Runtime, payload: dict[str, Any]) -> None:
    """Send the directory's current profile to Stream: a partial update when the mirror has a row, else an upsert.

    Sent even when the mirror says Stream holds it: a row is queued because Stream may not (a PUT, a profile sent
    in a call with no answer), and a run that died mid-call may have written an older profile after the mirror
    recorded a newer one. One call per row; a profile Stream already holds is simply written again.
    """
    stream_id = str(payload["stream_id"])
    deadline = Deadline(runtime.settings.provision_deadline_s)
    try:
        sent = await sync_identities(
            runtime.sessionmaker, runtime.stream, [Identity.parse(stream_id)], deadline=deadline, force=True
        )
    except IdentityNotFound:
        log.info("identity.sync_skipped", stream_id=stream_id, reason="not in the directory")
        return
    if sent:
        log.info("identity.synced", stream_id=stream_id)
