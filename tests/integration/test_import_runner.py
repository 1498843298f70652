"""The import below the command line: Stream syncs it queues, a crash mid-run, and `--from-sql` on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from onecrew_chat import dbadmin
from onecrew_chat.accounts.directory_import import SourceRow
from onecrew_chat.accounts.directory_import.kinds import COMPANIES, USERS
from onecrew_chat.accounts.directory_import.runner import run_import
from onecrew_chat.accounts.directory_import.sql_source import SqlSource
from onecrew_chat.db import make_engine, make_sessionmaker
from onecrew_chat.identity import Identity
from onecrew_chat.models import OutboxMessage, StreamIdentity, User
from tests.conftest import PG_ADMIN_URL
from tests.factories import add_company, add_users
from tests.integration.directory_files import count, summary, users
from tests.integration.directory_files import run_import as run_cli
from tests.support import new_id


class ListSource:
    """Rows from memory, `size` at a time; with `crash_after`, the process "dies" after that many chunks."""

    name, position_word = "memory", "line"

    def __init__(self, rows: list, crash_after: int | None = None):
        self.rows, self.crash_after = rows, crash_after

    async def total(self) -> int:
        return len(self.rows)

    async def chunks(self, size: int) -> AsyncIterator[list[SourceRow]]:
        for n, start in enumerate(range(0, len(self.rows), size)):
            if n == self.crash_after:
                raise RuntimeError("killed")
            yield [SourceRow(start + i + 1, row) for i, row in enumerate(self.rows[start : start + size])]

    async def close(self) -> None:
        pass


@pytest.fixture
async def sessionmaker(database_url):
    engine = make_engine(url=database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_profile_changes_of_identities_stream_knows_queue_their_identity_sync(sessionmaker):
    async with sessionmaker() as session:
        renamed, recategorised, unknown_to_stream, placeholder = await add_users(session, 4, "Old")
        company = await add_company(session, "Old Co")
        for kind, entity, flag in (
            ("user", renamed, False),
            ("user", recategorised, False),
            ("user", placeholder, True),
            ("company", company, False),
        ):
            stream_id = Identity(kind, entity).stream_id
            session.add(
                StreamIdentity(stream_id=stream_id, kind=kind, entity_id=entity, profile_hash="h", placeholder=flag)
            )
        await session.commit()
        stored = {u.id: u for u in (await session.scalars(select(User))).all()}

    def same(user_id: str, **change) -> dict:
        user = stored[user_id]
        return {"id": user.id, "name": user.name, "image_url": user.image_url, "category": user.category, **change}

    rows = [
        same(renamed, name="New Name"),
        same(recategorised, category="talent"),
        same(unknown_to_stream, name="Also New"),
        same(placeholder),
        {"id": new_id(), "name": "Brand New"},
    ]
    result = await run_import(sessionmaker, USERS, ListSource(rows), batch_size=2)
    assert result.counts == {"created": 1, "updated": 3, "unchanged": 1, "rejected": 0}
    assert result.sync_queued == 2 and result.batches == 3
    companies = await run_import(sessionmaker, COMPANIES, ListSource([{"id": company, "name": "New Co"}]))
    assert companies.sync_queued == 1

    async with sessionmaker() as session:
        queued = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert [(m.kind, m.payload) for m in queued if m.dedupe_key] == [
        ("identity.sync", {"stream_id": Identity("user", renamed).stream_id}),
        ("identity.sync", {"stream_id": Identity("user", placeholder).stream_id}),
        ("identity.sync", {"stream_id": Identity("company", company).stream_id}),
    ]
    # Renamed identities Stream holds are also sent once more later (settle), as the PUTs do.
    assert [(m.kind, m.payload) for m in queued if not m.dedupe_key] == [
        ("identity.sync", {"stream_id": Identity("user", renamed).stream_id}),
        ("identity.sync", {"stream_id": Identity("company", company).stream_id}),
    ]
    again = await run_import(sessionmaker, USERS, ListSource(rows), batch_size=2)
    assert again.counts["unchanged"] == 5 and again.sync_queued == 1  # the placeholder's pending sync, reused
    async with sessionmaker() as session:
        assert len((await session.scalars(select(OutboxMessage))).all()) == 3 + 2


async def test_a_crash_after_some_batches_keeps_them_and_a_rerun_completes(sessionmaker, database_url):
    rows = users(250)
    with pytest.raises(RuntimeError, match="killed"):
        await run_import(sessionmaker, USERS, ListSource(rows, crash_after=2), batch_size=100)
    assert await count(database_url, User) == 200

    resumed = await run_import(sessionmaker, USERS, ListSource(rows), batch_size=100)
    assert resumed.counts == {"created": 50, "updated": 0, "unchanged": 200, "rejected": 0}
    assert await count(database_url, User) == 250


async def test_the_summary_lists_the_first_1000_rejected_and_renamed_rows_and_counts_them_all(sessionmaker):
    """A million bad rows once held 617 MB of rejections: the summary keeps the first 1,000 of each list."""
    rows = [{"id": new_id(), "name": ""} for _ in range(1005)] + [{"name": "No Id"}] * 1500
    summary = await run_import(sessionmaker, USERS, ListSource(rows))
    assert (summary.counts["created"], summary.counts["rejected"]) == (1005, 1500)
    assert (len(summary.renamed), summary.renamed_count, summary.renamed_omitted) == (1000, 1005, 5)
    assert (len(summary.rejections), summary.rejections_omitted) == (1000, 500)
    assert summary.rejections[0] == (1006, "id: is required") and summary.renamed[-1][0] == 1000
    quiet = await run_import(sessionmaker, USERS, ListSource(rows), max_rejections=0)
    assert (quiet.rejections, quiet.renamed, quiet.counts["rejected"]) == ([], [], 1500)


async def test_concurrent_imports_of_the_same_rows_in_shuffled_orders_never_deadlock(postgres_only_url):
    """Six imports of the same users (half of them already stored), each in its own order, at once on PostgreSQL."""
    engine = make_engine(url=postgres_only_url)
    sessionmaker = make_sessionmaker(engine)
    shuffle = random.Random(7)
    try:
        stored = users(200)
        await run_import(sessionmaker, USERS, ListSource(stored))
        rows = [{**row, "name": f"{row['name']} renamed"} for row in stored] + users(200, "New")
        runs = [ListSource(shuffle.sample(rows, len(rows))) for _ in range(6)]
        summaries = await asyncio.gather(*(run_import(sessionmaker, USERS, run, batch_size=50) for run in runs))
        assert [s.stopped for s in summaries] == [None] * 6, "a batch failed (a deadlock is one)"
        assert all(s.counts["rejected"] == 0 for s in summaries)
        async with sessionmaker() as session:
            names = dict((await session.execute(select(User.id, User.name))).all())
        assert names == {row["id"]: row["name"] for row in rows}
    finally:
        await engine.dispose()


MAIN_BACKEND_SCHEMA = [
    "CREATE TABLE profiles (id uuid PRIMARY KEY, full_name text, avatar text, category text, deleted_at timestamptz)",
    "CREATE TABLE companies (id uuid PRIMARY KEY, name text NOT NULL, logo_url text, subcategory text)",
    "CREATE TABLE company_members (company_id uuid, user_id uuid, role text, invitation_status text,"
    " PRIMARY KEY (company_id, user_id))",
]


@pytest.fixture(scope="module")
def main_backend_database(postgres_url):
    """A PostgreSQL database shaped like OneCrew's main backend (its own tables, not ours), created once for the
    module: creating and dropping a database takes seconds on a loaded server (DROP DATABASE forces a checkpoint)."""
    name = f"onecrew_main_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(dbadmin.create_database(PG_ADMIN_URL, name))
    for statement in MAIN_BACKEND_SCHEMA:
        asyncio.run(dbadmin.admin_execute(url, statement))
    yield url
    asyncio.run(dbadmin.drop_database(PG_ADMIN_URL, name))


@pytest.fixture
def main_backend_url(main_backend_database):
    """The main backend's database with its tables empty."""
    for table in ("company_members", "companies", "profiles"):
        asyncio.run(dbadmin.admin_execute(main_backend_database, f"DELETE FROM {table}"))
    return main_backend_database


def test_from_sql_reads_onecrew_database_with_the_default_or_a_custom_select(tmp_path, database_url, main_backend_url):
    live, deleted, company, miscategorised = new_id(), new_id(), new_id(), new_id()
    for statement in (
        f"INSERT INTO profiles VALUES ('{live}', 'Amr', 'https://img.example/a.png', 'talent', NULL),"
        f" ('{deleted}', 'Gone', NULL, 'crew', now()), ('{miscategorised}', 'Aaron', NULL, '{'x' * 40}', NULL)",
        f"INSERT INTO companies VALUES ('{company}', 'Sat Education', NULL, 'academy')",
        f"INSERT INTO company_members VALUES ('{company}', '{live}', 'owner', 'accepted'),"
        f" ('{company}', '{deleted}', 'admin', 'accepted')",
    ):
        asyncio.run(dbadmin.admin_execute(main_backend_url, statement))

    companies = run_cli(tmp_path, database_url, "companies", "--from-sql", main_backend_url, "--json")
    assert companies.returncode == 0, companies.stdout + companies.stderr
    assert summary(companies)["created"] == 1

    custom = (
        "SELECT id, full_name AS name, avatar AS image_url, category FROM profiles "
        "WHERE deleted_at IS NULL ORDER BY full_name DESC"
    )
    people = run_cli(tmp_path, database_url, "users", "--from-sql", main_backend_url, ONECREW_IMPORT_USERS_SQL=custom)
    assert people.returncode == 1, people.stdout + people.stderr
    assert "1 created, 0 updated, 0 unchanged, 1 rejected" in people.stdout
    assert f"  id {miscategorised} (row 2): category: String should have at most 32 characters" in people.stdout
    assert asyncio.run(count(database_url, User)) == 1

    default = run_cli(tmp_path, database_url, "users", "--from-sql", main_backend_url)
    assert default.returncode == 2
    assert 'relation "users" does not exist' in default.stderr

    members = run_cli(tmp_path, database_url, "members", "--from-sql", main_backend_url, "--json")
    assert members.returncode == 1
    assert summary(members)["created"] == 1
    assert summary(members)["rejections"] == [
        {"row": 2, "company_id": company, "user_id": deleted, "error": f"User not found: {deleted}"}
    ]


async def test_sql_source_streams_in_chunks(main_backend_url):
    ids = sorted(new_id() for _ in range(25))
    values = ", ".join(f"('{i}', 'Co {n}', NULL, NULL)" for n, i in enumerate(ids))
    await dbadmin.admin_execute(main_backend_url, f"INSERT INTO companies VALUES {values}")
    source = SqlSource(main_backend_url, "SELECT id, name, logo_url, subcategory FROM companies ORDER BY id;")
    assert await source.total() == 25
    chunks = [chunk async for chunk in source.chunks(10)]
    await source.close()
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    assert [row.data["id"] for chunk in chunks for row in chunk] == ids
    assert chunks[2][0].position == 21
