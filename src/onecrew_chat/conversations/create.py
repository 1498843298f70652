"""Creating a conversation: record it with its outbox row in one commit, then provision Stream inline within a deadline."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.config import UnknownParticipants
from onecrew_chat.conversations.request import CreateConversationRequest
from onecrew_chat.conversations.resolve import Plan, plan_conversation
from onecrew_chat.db import reads_only, single_statement, unit_of_work, utcnow
from onecrew_chat.driver_reads import DriverRead
from onecrew_chat.errors import StreamFailed
from onecrew_chat.identity import ChatStatus, ConversationType
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import CONVERSATIONS_CREATED, PROVISIONING_DEFERRED
from onecrew_chat.models import Conversation, OutboxMessage, new_uuid
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.client import counting_calls
from onecrew_chat.stream.errors import StreamError, StreamTransientError, StreamUsersMissing
from onecrew_chat.sync.channels import (
    ClaimBusy,
    NewClaim,
    finish,
    is_provisioned,
    is_settled,
    load_conversation,
    new_claim,
    participant_identities,
    provision_deadline,
)
from onecrew_chat.sync.coalescer import coalescer
from onecrew_chat.sync.cutover import switch as cutover
from onecrew_chat.sync.cutover.existing import adopt_pair_channel
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import is_fresh
from onecrew_chat.sync.mirror_record import sync_identities
from onecrew_chat.sync.participants import Directory
from onecrew_chat.sync.queue import PROVISION, enqueue_provision, provision_dedupe_key
from onecrew_chat.sync.read_model import (
    ConversationRecord,
    ParticipantRecord,
    Provisionable,
    records_of,
    select_records,
)
from onecrew_chat.sync.writes import CHUNK, PARTICIPANT, insert_participants, participants_insert

log = get_logger(__name__)

# The worker leaves a fresh outbox row alone this long past the deadline, so that it does not race the inline run.
INLINE_GRACE_S = 2.0
# Called in the transaction that records a new conversation (an Idempotency-Key is bound to it there).
Binder = Callable[[AsyncSession, str], Awaitable[None]]


@dataclass(frozen=True)
class Created:
    """What a create answers: the conversation as recorded (ready, or still provisioning when Stream was slow),
    the directory rows its participants' JSON shows, and whether it existed before this request."""

    conversation: Provisionable
    directory: Directory
    existing: bool

    @property
    def still_provisioning(self) -> bool:
        """Stream did not hold the channel with every member within the deadline: the worker finishes it."""
        return self.conversation.chat_status is ChatStatus.PROVISIONING

    @property
    def retry_finds_it(self) -> bool:
        """Whether the same create sent again finds this conversation: a pair (one conversation per pair). A group
        sent again without an Idempotency-Key is a new group."""
        return self.conversation.conversation_type != ConversationType.GROUP


@dataclass
class Recorded:
    """The outcome of the first unit of work."""

    plan: Plan
    conversation: Provisionable
    message: OutboxMessage | None
    existing: bool
    settled: bool
    claimed: str | None = None  # the claim token a new conversation was inserted with


def _pair_and_switch() -> Any:
    """The cut-over switch, then the pair's conversation with its participants, as plain rows (no ORM; none: one
    row of NULLs after the switch)."""
    switch = select(cutover.in_progress_column()).subquery("switch")
    records = select_records().subquery("pair")
    return select(switch.c.cutover_in_progress, *records.c).select_from(
        switch.outerjoin(records, records.c.pair_key == bindparam("pair_key"))
    )


_PAIR_AND_SWITCH = DriverRead(_pair_and_switch())


async def load_pair_and_switch(session: AsyncSession, key: str) -> tuple[ConversationRecord | None, bool]:
    """The conversation of a pair (either direction), and whether a cut-over is in progress, in one query: a create
    of a pair it does not find needs the switch next (a plain read either way, in or out of a transaction: nothing
    holds the switch's row)."""
    rows = await _PAIR_AND_SWITCH.rows(session, {"pair_key": key})
    found = records_of(row[1:] for row in rows if row[1] is not None)
    return (found[0] if found else None), bool(rows[0][0])


# A Core INSERT of the conversation (built once), not an ORM-enabled one: no unit of work, no objects to track.
_INSERT_CONVERSATION = insert(cast(Table, Conversation.__table__))


def new_conversation(plan: Plan, claim: NewClaim | None = None) -> ConversationRecord:
    """The conversation and its participants for a plan (acting identity first), claimed if `claim`."""
    now = utcnow()
    return ConversationRecord(
        id=new_uuid(),
        channel_type="messaging",
        channel_id=plan.channel_id,
        conversation_type=plan.conversation_type.value,
        name=plan.name,
        pair_key=plan.pair_key,
        created_by_type=plan.acting.kind.value,
        created_by_id=plan.acting.entity_id,
        chat_status=ChatStatus.PROVISIONING,
        provision_lease_token=claim.token if claim else None,
        provision_lease_until=claim.until if claim else None,
        created_at=now,
        updated_at=now,
        participants=[ParticipantRecord(new_uuid(), i.kind.value, i.entity_id, now, now) for i in plan.identities],
    )


@functools.lru_cache(maxsize=16)
def _record_statement(columns: tuple[str, ...], participant_columns: tuple[str, ...], participants: int) -> Any:
    """PostgreSQL: the conversation and its participants as WITH queries of the outbox row's INSERT (built once per
    shape). The participants' foreign key and counter triggers run at the end of the statement, after all three."""
    table = cast(Table, Conversation.__table__)
    conversation = (
        insert(table)
        .values({name: bindparam(f"conv_{name}", type_=table.c[name].type) for name in columns})
        .returning(table.c.id)
        .cte("new_conversation")
    )
    people, _ = participants_insert([dict.fromkeys(participant_columns, "")] * participants)
    return outbox.add_along(conversation, people.returning(PARTICIPANT.c.id).cte("new_participants"))


def one_statement_new(sessionmaker: async_sessionmaker[AsyncSession], conversation: ConversationRecord) -> bool:
    """Whether `record_new` writes this conversation in one statement: on PostgreSQL (SQLite has no writing WITH),
    with its participants in one INSERT."""
    return sessionmaker.kw["bind"].dialect.name == "postgresql" and 0 < len(conversation.participants) <= CHUNK


async def record_new(
    session: AsyncSession, conversation: ConversationRecord, *, delay_s: float, one_statement: bool
) -> OutboxMessage:
    """`insert_conversation` and `enqueue_provision` of the new conversation: one statement when `one_statement`
    (what `one_statement_new` said of it), else one each."""
    if not one_statement:
        await insert_conversation(session, conversation)
        return await enqueue_provision(session, conversation, delay_s=delay_s, known_new=True)
    rows = [p.row(conversation.id) for p in conversation.participants]
    _, people = participants_insert(rows)
    row = conversation.row()
    params = {
        **{f"conv_{name}": value for name, value in row.items()},
        **people,
        **outbox.add_params(
            PROVISION, {"conversation_id": conversation.id}, provision_dedupe_key(conversation.id), delay_s
        ),
    }
    statement = _record_statement(tuple(row), tuple(rows[0]), len(rows))
    return outbox.added(await session.execute(statement, params), delay_s)


async def insert_conversation(session: AsyncSession, conversation: ConversationRecord) -> None:
    """INSERT the conversation, then its participants: one statement for all of them, in key order (so that
    concurrent creates sharing members never deadlock on their counters); `participants` keeps the plan's order."""
    await session.execute(_INSERT_CONVERSATION, conversation.row())
    await insert_participants(session, [p.row(conversation.id) for p in conversation.participants])


async def record_conversation(
    runtime: Runtime,
    user_id: str,
    request: CreateConversationRequest,
    *,
    bind: Binder | None = None,
    resume_id: str | None = None,
    deadline: Deadline | None = None,
) -> Recorded:
    """Resolve, then find the pair (or `resume_id`, a keyed create's earlier conversation) with reads only; when there
    is none, insert conversation + participants + outbox row, binding it with `bind`, in one commit (one found but
    not provisioned gets its outbox row in a commit of its own).

    During a cut-over a pair the service does not know is first looked for in Stream (no transaction open while
    Stream answers) and its old channel adopted; the pair is then found like any other.
    """
    delay_s = runtime.settings.provision_deadline_s + INLINE_GRACE_S
    looked_in_stream = False
    races = 0
    while True:
        plan: Plan | None = None
        try:
            # The reads need no transaction: opening (or finding ready) a pair that exists writes nothing.
            async with reads_only(runtime.sessionmaker) as session:
                plan = await plan_conversation(session, runtime.settings, user_id, request)
                conversation: Provisionable | None
                switch_on = False
                if resume_id is not None:
                    conversation = await load_conversation(session, resume_id)
                elif plan.pair_key:
                    conversation, switch_on = await load_pair_and_switch(session, plan.pair_key)
                else:
                    conversation = None
                if conversation is not None and is_provisioned(conversation):
                    settled = await is_settled(session, conversation, plan.profiles(), plan.directory.mirror)
                    # A ready channel with a changed profile needs only the profile (and has its identity.sync row).
                    return Recorded(plan, conversation, None, existing=True, settled=settled)
            if conversation is not None:
                async with unit_of_work(runtime.sessionmaker) as session:
                    # Read again as the row this commit writes: a failed conversation goes back to provisioning.
                    row = await load_conversation(session, conversation.id)
                    if row is not None:
                        message = await enqueue_provision(session, row, delay_s=delay_s)
                        return Recorded(plan, row, message, existing=True, settled=False)
            # The switch as the pair lookup read it, a moment ago: a plain read here would see no more (the
            # operator's switch takes no lock a create waits for), at one more round trip.
            if resume_id is None and plan.pair_key is not None and not looked_in_stream and switch_on:
                raise _LookInStream
            # Inserted claimed by this request, which provisions it next: no claim transaction of its own.
            claim = new_claim(runtime.settings.provision_deadline_s)
            created = new_conversation(plan, claim)
            # One statement needs no transaction around it; a key to bind, or SQLite's three, need one.
            one_statement = one_statement_new(runtime.sessionmaker, created)
            alone = bind is None and one_statement
            async with (single_statement if alone else unit_of_work)(runtime.sessionmaker) as session:
                # A racing create of the same pair fails here, on the unique pair_key.
                message = await record_new(session, created, delay_s=delay_s, one_statement=one_statement)
                if bind is not None:
                    await bind(session, created.id)
            return Recorded(plan, created, message, existing=False, settled=False, claimed=claim.token)
        except _LookInStream:
            assert plan is not None
            looked_in_stream = True
            await adopt_old_channel(runtime, plan, deadline)
        except IntegrityError:
            races += 1
            if races == 2 or plan is None or plan.pair_key is None:
                raise
            log.info("conversation.pair_race", channel_id=plan.channel_id)


class _LookInStream(Exception):
    """Leave the transaction: the pair is looked for in Stream first (a cut-over is in progress)."""


async def adopt_old_channel(runtime: Runtime, plan: Plan, deadline: Deadline | None) -> None:
    """Adopt the pair's existing Stream channel, if any; when Stream cannot say, the create makes a new channel (the
    next catch-up adopts an old one with history in its place while the new one is empty)."""
    try:
        await adopt_pair_channel(runtime, plan.identities, deadline or Deadline(runtime.settings.provision_deadline_s))
    except StreamError as exc:
        log.warning("conversation.old_channel_lookup_failed", channel_id=plan.channel_id, error=str(exc))


def mirrored(plan: Plan) -> bool:
    """Every participant's mirror row, as the plan read it, says Stream holds its profile: no upsert to join."""
    directory = plan.directory
    return all(is_fresh(directory.profile(i), directory.mirror.get(i.stream_id)) for i in plan.identities)


def placeholders_allowed(runtime: Runtime, recorded: Recorded) -> bool:
    """Whether unknown participants may become placeholders (the policy, or placeholders this plan already has)."""
    return runtime.settings.unknown_participants is UnknownParticipants.PLACEHOLDER or bool(recorded.plan.placeholders)


async def provision_inline(runtime: Runtime, recorded: Recorded, deadline: Deadline) -> StreamError | None:
    """Provision within the request's deadline (claim, call, record); on failure leave the outbox row to the worker.

    A ready conversation whose participants' profiles changed gets just the profiles (a failure there leaves the
    conversation usable; its identity.sync rows finish it). Another run holding the claim past the deadline is not
    a failure of ours: it (or the outbox row, if it dies) finishes the job.
    """
    conversation, message = recorded.conversation, recorded.message
    placeholder_ok = placeholders_allowed(runtime, recorded)
    if is_provisioned(conversation):
        try:
            await sync_identities(
                runtime.sessionmaker,
                runtime.stream,
                participant_identities(conversation),
                placeholder_ok=placeholder_ok,
                deadline=deadline,
                profiles=recorded.plan.profiles(),
            )
        except StreamError as exc:
            log.warning("identities.refresh_failed", channel_id=conversation.channel_id, error=str(exc))
        return None
    try:
        await finish(
            runtime,
            conversation.id,
            deadline=deadline,
            placeholder_ok=placeholder_ok,
            profiles=recorded.plan.profiles(),
            # The plan's mirror rows are recent enough for a conversation this request just made.
            mirror=None if recorded.existing else recorded.plan.directory.mirror,
            outbox_message=message,
            conversation=conversation,
            claimed=recorded.claimed,
        )
    except ClaimBusy as busy:
        log.info("conversation.provisioning_busy", channel_id=conversation.channel_id, error=str(busy))
        return busy
    except StreamError as exc:
        if message is not None:
            await outbox.hand_over(runtime, message.id)
        return exc
    return None


async def create_conversation(
    runtime: Runtime,
    user_id: str,
    request: CreateConversationRequest,
    *,
    bind: Binder | None = None,
    resume_id: str | None = None,
) -> Created:
    """POST /api/chat/conversations: the conversation, ready or still provisioning; StreamFailed (502) when Stream
    refuses us.

    `bind` ties a new conversation to the request's Idempotency-Key in the commit that records it; `resume_id`
    is the conversation an earlier run of that key made (a retry after a crash finishes and answers it).
    """
    started = time.perf_counter()
    deadline = provision_deadline(runtime.settings.provision_deadline_s)  # every Stream call and wait of the request
    batches = coalescer(runtime)
    # Counted as on its way to the identity batch until it joins one (or needs none), like a token: a burst of
    # creates of new pairs fills one batch instead of leaving at each 5 ms pause between them (sync/coalescer.py).
    with counting_calls() as stream_calls, batches.arrival():
        recorded = await record_conversation(
            runtime, user_id, request, bind=bind, resume_id=resume_id, deadline=deadline
        )
        if recorded.settled or mirrored(recorded.plan):
            batches.depart()
        failure = None if recorded.settled else await provision_inline(runtime, recorded, deadline)
    conversation = recorded.conversation
    if failure is not None:
        # Users Stream still calls missing after repairs are eventual consistency: the worker finishes the job.
        if isinstance(failure, (StreamTransientError, StreamUsersMissing)):
            PROVISIONING_DEFERRED.inc()
            log.warning(
                "conversation.provisioning_deferred",
                channel_id=conversation.channel_id,
                conversation_id=conversation.id,
                operation=failure.operation,
                error=str(failure),
            )
        else:
            log.error("conversation.stream_refused", channel_id=conversation.channel_id, error=str(failure))
            raise StreamFailed(f"Stream refused the request: {failure}")
    if not recorded.existing:
        CONVERSATIONS_CREATED.labels(conversation_type=conversation.conversation_type).inc()
    log.info(
        "conversation.created",
        channel_id=conversation.channel_id,
        conversation_id=conversation.id,
        conversation_type=conversation.conversation_type,
        existing=recorded.existing,
        participants=len(conversation.participants),
        status=conversation.chat_status,
        stream_calls=stream_calls.calls,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return Created(conversation, recorded.plan.directory, existing=recorded.existing)
