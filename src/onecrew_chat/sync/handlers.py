"""Outbox work of the sync layer: finish a conversation's provisioning, push identities' profiles to Stream.

Handlers take `(runtime, payload)` and open their own short transactions, so that no transaction or pooled
connection is held while they wait on Stream. Dead-letter handlers run in the transaction that gives up on a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.identity import ChatStatus, Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation
from onecrew_chat.stream.errors import StreamBatchError
from onecrew_chat.sync.channels import ClaimBusy, Outcome, finish, provision_deadline
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import BATCH, read_identities
from onecrew_chat.sync.mirror_record import save
from onecrew_chat.sync.queue import IDENTITY_SYNC, PROVISION

if TYPE_CHECKING:
    from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

__all__ = [
    "IDENTITY_SYNC",
    "IDENTITY_SYNC_BATCH",
    "PROVISION",
    "provision",
    "provisioning_failed",
    "provisioning_revived",
    "sync_identity",
    "sync_identity_batch",
]

# identity.sync rows the worker runs together: Stream's limit per UpdateUsers call.
IDENTITY_SYNC_BATCH = BATCH


class SentWithoutRefusedId(Exception):
    """A batch Stream refused because of another identity: this one is tried again (without the refused one)."""


async def provision(runtime: Runtime, payload: dict[str, Any]) -> None:
    """Get-or-create the channel with every member (safe to repeat); a conversation already ready is left alone."""
    conversation_id = str(payload["conversation_id"])
    deadline = provision_deadline(runtime.settings.provision_deadline_s)
    try:
        # Participants were accepted when the conversation was created; one the directory lost becomes a placeholder.
        outcome = await finish(runtime, conversation_id, deadline=deadline, placeholder_ok=True)
    except ClaimBusy as busy:
        # Another run is provisioning it right now: the row is tried again later, recorded like any deadline.
        raise busy.as_deadline() from None
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
            Conversation.chat_status != ChatStatus.READY,
        )
        .values(chat_status=ChatStatus.FAILED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount:
        log.error("conversation.provisioning_failed", conversation_id=conversation_id, error=error[:500])


async def provisioning_revived(session: AsyncSession, payload: dict[str, Any]) -> None:
    """Its dead row was made due again (the failure was a passing one): a `failed` conversation is `provisioning`."""
    conversation_id = str(payload["conversation_id"])
    result = await session.execute(
        update(Conversation)
        .where(
            or_(Conversation.id == conversation_id, Conversation.channel_id == conversation_id),
            Conversation.chat_status == ChatStatus.FAILED,
        )
        .values(chat_status=ChatStatus.PROVISIONING, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount:
        log.info("conversation.provisioning_requeued", conversation_id=conversation_id, reason="passing failure")


async def sync_identity(runtime: Runtime, payload: dict[str, Any]) -> None:
    """One `identity.sync` row run alone: `sync_identity_batch` of one (the worker runs the kind in batches)."""
    (outcome,) = await sync_identity_batch(runtime, [payload])
    if outcome is not None:
        raise outcome


async def sync_identity_batch(runtime: Runtime, payloads: list[dict[str, Any]]) -> Sequence[BaseException | None]:
    """`sync_identity` for up to 100 `identity.sync` rows at once: one read, one `UpdateUsers` call for identities
    Stream does not have, one `UpdateUsersPartial` for those it has, one write of the mirror rows.

    A login wave whose identities were deferred (Stream rate-limited or down when they asked for a token) is
    drained 100 per call instead of one call per identity. An identity the directory does not know is skipped
    (done), as `sync_identity` skips it. Rows whose identity Stream accepted are done whatever failed after it; the
    others fail with the error (one error object for all of them, so a 429's reset holds for the whole batch).
    When Stream refuses the whole call naming one identity, that row fails with the refusal (no retry fixes it)
    and the others are retried without it.
    """
    parsed: list[Identity | BaseException] = []
    for payload in payloads:
        try:
            parsed.append(Identity.parse(str(payload["stream_id"])))
        except (KeyError, ValueError) as exc:
            parsed.append(exc)
    wanted = sorted({identity for identity in parsed if isinstance(identity, Identity)})
    async with unit_of_work(runtime.sessionmaker) as session:
        batch = await read_identities(session, wanted)
    known = [identity for identity in wanted if batch.profile(identity) is not None]
    skipped = [identity.stream_id for identity in wanted if batch.profile(identity) is None]
    if skipped:
        log.info("identity.sync_skipped", stream_ids=skipped[:10], count=len(skipped), reason="not in the directory")
    failure: Exception | None = None
    try:
        if known:
            deadline = Deadline(runtime.settings.provision_deadline_s)
            await batch.send(runtime.stream, known, placeholder_ok=False, deadline=deadline, force=True)
    except Exception as exc:  # recorded per row below; what Stream accepted before it is saved all the same
        failure = exc
    finally:
        await save(runtime.sessionmaker, batch)
    refused_id = failure.bad_id if isinstance(failure, StreamBatchError) else None
    others = SentWithoutRefusedId(f"sent again without {refused_id}, which Stream refused") if refused_id else None
    outcomes: list[BaseException | None] = []
    for identity in parsed:
        if not isinstance(identity, Identity):
            outcomes.append(identity)
        elif failure is None or identity.stream_id in batch.accepted or identity.stream_id in skipped:
            outcomes.append(None)
        elif others is not None and identity.stream_id != refused_id:
            outcomes.append(others)
        else:
            outcomes.append(failure)
    sent = sum(1 for identity in known if identity.stream_id in batch.accepted)
    log.info("identity.synced_batch", rows=len(payloads), sent=sent, skipped=len(skipped), failed=failure is not None)
    return outcomes
