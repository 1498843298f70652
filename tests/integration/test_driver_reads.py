"""Reads sent on asyncpg itself (driver_reads.DriverRead) answer what SQLAlchemy answers, and fail like it.

The directory and the pair lookup of every create are such reads. Outside a transaction on PostgreSQL they skip
SQLAlchemy's execute; in a transaction, behind a transaction pooler and on SQLite they run through it. A read whose
connection was cut raises what any statement raises there, and the connection leaves the pool.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from onecrew_chat.api.errors import is_retryable
from onecrew_chat.conversations.create import load_pair_and_switch
from onecrew_chat.conversations.listing import PageRequest, list_conversations
from onecrew_chat.db import make_engine, make_sessionmaker, reads_only, unit_of_work, utcnow
from onecrew_chat.identity import ChatStatus, Identity, Kind, pair_key
from onecrew_chat.models import Conversation, ConversationParticipant, StreamIdentity
from onecrew_chat.sync.participants import load_directory
from tests.conftest import make_settings
from tests.factories import add_company, add_user, add_users
from tests.integration.test_pool_pings import _cut

pytestmark = pytest.mark.postgres


class _Statements:
    """The statements an engine sends, and whether each went through SQLAlchemy's cursor or on the driver."""

    def __init__(self, engine) -> None:
        self.through_cursor: list[bool] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, cursor, *_args) -> None:
        self.through_cursor.append(cursor is not None)

    def take(self) -> list[bool]:
        seen, self.through_cursor = self.through_cursor, []
        return seen


async def _directory_world(sessionmaker) -> dict:
    """Users with and without images and mirror rows, companies with an acting owner, a pending admin and a plain
    member, and a ready pair: everything the directory and the pair lookup read back."""
    async with sessionmaker() as session:
        owner, pending, plain, bare = (
            await add_user(session, "Owner"),
            *await add_users(session, 2),
            await add_user(session, "Bare", image_url=None),
        )
        company = await add_company(session, "Lolo Academy", owner=owner)
        other_company = await add_company(session, "Sat Education", owner=pending, role="admin", status="pending")
        session.add_all(
            StreamIdentity(
                stream_id=identity.stream_id,
                kind=identity.kind.value,
                entity_id=identity.entity_id,
                profile_hash=fill * 64,
                placeholder=placeholder,
            )
            for identity, fill, placeholder in (
                (Identity(Kind.USER, owner), "a", False),
                (Identity(Kind.COMPANY, company), "b", True),
            )
        )
        now = utcnow()
        key = pair_key(Identity(Kind.USER, plain), Identity(Kind.COMPANY, company))
        session.add(
            Conversation(
                id="c0ffee00-0000-4000-8000-000000000001",
                channel_id="user_company-driver-reads",
                conversation_type="user_company",
                pair_key=key,
                created_by_type="user",
                created_by_id=plain,
                chat_status=ChatStatus.READY,
                stream_verified_at=now - timedelta(minutes=3),
                participants=[
                    ConversationParticipant(participant_type="user", participant_id=plain),
                    ConversationParticipant(participant_type="company", participant_id=company, last_read_at=now),
                ],
            )
        )
        await session.commit()
    return {
        "users": [owner, pending, plain, bare, "00000000-0000-4000-8000-00000000dead"],
        "companies": [company, other_company],
        "members": [(owner, company), (pending, other_company), (plain, company)],
        "pair_key": key,
    }


@pytest.fixture
async def seeded(postgres_only_url):
    """(sessionmaker, statements seen, the world of `_directory_world`) on an engine of the test's own."""
    engine = make_engine(url=postgres_only_url)
    sessionmaker = make_sessionmaker(engine)
    statements = _Statements(engine)
    try:
        world = await _directory_world(sessionmaker)
        statements.take()
        yield sessionmaker, statements, world
    finally:
        await engine.dispose()


async def _both_ways(sessionmaker, read):
    """`read(session)` outside a transaction (on the driver), then in one (through SQLAlchemy)."""
    async with reads_only(sessionmaker) as session:
        on_driver = await read(session)
    async with unit_of_work(sessionmaker) as session:
        return on_driver, await read(session)


async def test_driver_reads_answer_what_sqlalchemy_answers(seeded):
    sessionmaker, statements, world = seeded
    asks = [
        dict(user_ids=world["users"]),
        dict(company_ids=world["companies"]),
        dict(user_ids=world["users"][:2], company_ids=world["companies"], with_mirror=True),
        *(dict(user_ids=[user], member=(user, company), with_mirror=True) for user, company in world["members"]),
        *(dict(company_ids=[company], member=(user, company)) for user, company in world["members"]),
        dict(user_ids=world["users"], company_ids=world["companies"], member=world["members"][0]),
    ]
    for ask in asks:
        on_driver, through_sqlalchemy = await _both_ways(
            sessionmaker, lambda session, ask=ask: load_directory(session, **ask)
        )
        assert statements.take() == [False, True], "on the driver outside a transaction, through SQLAlchemy in one"
        assert dataclasses.asdict(on_driver) == dataclasses.asdict(through_sqlalchemy), ask
        assert on_driver.users or on_driver.companies

    for key in (world["pair_key"], "no-such-pair"):
        on_driver, through_sqlalchemy = await _both_ways(
            sessionmaker, lambda session, key=key: load_pair_and_switch(session, key)
        )
        assert statements.take() == [False, True]
        assert on_driver == through_sqlalchemy
    found, switch_on = await _pair(sessionmaker, world["pair_key"])
    assert found is not None and found.chat_status is ChatStatus.READY and not switch_on
    assert found.updated_at.tzinfo is not None and len(found.participants) == 2


async def test_a_list_page_on_the_driver_is_the_page_sqlalchemy_reads(seeded):
    sessionmaker, statements, world = seeded
    plain, company = world["members"][2]
    for identity in (Identity(Kind.USER, plain), Identity(Kind.COMPANY, company)):
        for request in (PageRequest(), PageRequest(search="LOLO"), PageRequest(search="nobody"), PageRequest(2)):
            on_driver, through_sqlalchemy = await _both_ways(
                sessionmaker,
                lambda session, identity=identity, request=request: list_conversations(session, identity, request),
            )
            assert on_driver.total == through_sqlalchemy.total
            # The user's other participant is the company "Lolo Academy"; the company's is a user named "User 1".
            matches = request.search is None or (request.search == "LOLO" and identity.kind is Kind.USER)
            assert on_driver.total == (1 if matches else 0)
            assert [(tuple(c), [tuple(m) for m in ms]) for c, ms in on_driver.conversations] == [
                (tuple(c), [tuple(m) for m in ms]) for c, ms in through_sqlalchemy.conversations
            ]
    assert False in statements.take()


async def _pair(sessionmaker, key):
    async with reads_only(sessionmaker) as session:
        return await load_pair_and_switch(session, key)


async def test_a_driver_read_on_a_cut_connection_fails_like_any_statement(postgres_only_url):
    """The database restarted under a pooled connection: the read raises the retryable lost-connection error (a 503
    with Retry-After for a request), that connection leaves the pool, and the next read works."""
    engine = make_engine(url=postgres_only_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            user = await add_user(session, "Amr")
        async with reads_only(sessionmaker) as session:
            pid = int(await session.scalar(text("SELECT pg_backend_pid()")))
            await _cut(postgres_only_url, pid)
            with pytest.raises(DBAPIError) as raised:
                await load_directory(session, [user])
        assert raised.value.connection_invalidated and is_retryable(raised.value)
        async with reads_only(sessionmaker) as session:
            assert list((await load_directory(session, [user])).users) == [user]
    finally:
        await engine.dispose()


async def test_behind_a_transaction_pooler_reads_keep_to_sqlalchemy(postgres_only_url):
    """PgBouncer in transaction mode may move the next round trip to another server connection: there only
    SQLAlchemy's uniquely named statements are sent (docs/operations.md)."""
    engine = make_engine(make_settings(postgres_only_url, "http://127.0.0.1:9", db_transaction_pooler=True))
    sessionmaker = make_sessionmaker(engine)
    statements = _Statements(engine)
    try:
        async with sessionmaker() as session:
            user = await add_user(session, "Amr")
        statements.take()
        async with reads_only(sessionmaker) as session:
            assert list((await load_directory(session, [user])).users) == [user]
        assert statements.take() == [True]
    finally:
        await engine.dispose()
