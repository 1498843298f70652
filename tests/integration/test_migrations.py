"""Migrations keep the previous version working: each has a downgrade, the newest round-trips, and a database a newer
version migrated (expand-only) still serves this version, while one it cannot use is refused in words."""

from __future__ import annotations

import ast
import asyncio
import uuid
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from onecrew_chat import dbadmin
from onecrew_chat.cli.serve import StartupRefused, check_database
from onecrew_chat.config import to_async_url
from onecrew_chat.db import alembic_config, downgrade_database, head_revision, upgrade_database
from onecrew_chat.schema_status import database_position, schema_status, shipped_migrations
from tests.api.test_health import client_for
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.integration.test_cli import production_env, run

# The first migration that records `oldest_code_head`; every later one must declare it.
COMPATIBILITY_FROM = "0017"


def _scripts():
    return list(reversed(list(ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions())))


def test_every_migration_has_a_downgrade_that_does_something():
    for script in _scripts():
        tree = ast.parse(Path(script.path).read_text())
        [downgrade] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "downgrade"]
        body = [n for n in downgrade.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        assert body and not all(isinstance(n, ast.Pass) for n in body), f"{script.revision}: empty downgrade"


def test_migrations_declare_the_oldest_code_that_still_runs_on_them():
    ids = [m.revision for m in shipped_migrations()]
    previous = None
    for script in _scripts():
        if ids.index(script.revision) < ids.index(COMPATIBILITY_FROM):
            continue
        oldest = getattr(script.module, "oldest_code_head", None)
        assert oldest is not None, f"{script.revision}: declare oldest_code_head (docs/operations.md, migrations)"
        # Expand (an older head) or contract (its own); never a head after it, never going back.
        assert oldest in ids and ids.index(oldest) <= ids.index(script.revision), (script.revision, oldest)
        assert previous is None or ids.index(oldest) >= ids.index(previous), (script.revision, oldest, previous)
        previous = oldest


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request, tmp_path):
    """An empty database of each kind (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    name = f"onecrew_mig_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(dbadmin.create_database(PG_ADMIN_URL, name))
    yield url
    asyncio.run(dbadmin.drop_database(PG_ADMIN_URL, name))


async def _schema(url: str) -> dict:
    """Tables with their columns, indexes, unique and foreign keys; on PostgreSQL also triggers and functions."""
    engine = create_async_engine(to_async_url(url))
    try:
        async with engine.connect() as conn:

            def read(sync) -> dict:
                found = inspect(sync)
                shape = {
                    table: (
                        [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
                        sorted(
                            (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(table)
                        ),
                        sorted(str(u["column_names"]) for u in found.get_unique_constraints(table)),
                        sorted(
                            str((f["constrained_columns"], f["referred_table"])) for f in found.get_foreign_keys(table)
                        ),
                    )
                    for table in sorted(found.get_table_names())
                }
                if sync.dialect.name == "postgresql":
                    shape["triggers"] = sorted(
                        sync.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars()
                    )
                    shape["functions"] = sorted(
                        sync.execute(
                            text("SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace")
                        ).scalars()
                    )
                return shape

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


def test_downgrade_then_upgrade_of_the_newest_migration_round_trips(fresh_url):
    newest = _scripts()[-1]
    upgrade_database(fresh_url)
    at_head = asyncio.run(_schema(fresh_url))
    marker = asyncio.run(database_position(make_settings(fresh_url, "http://127.0.0.1:9")))

    downgrade_database(fresh_url, newest.down_revision)
    below = asyncio.run(_schema(fresh_url))
    assert below != at_head, "the newest migration's downgrade changed nothing"
    assert (
        asyncio.run(database_position(make_settings(fresh_url, "http://127.0.0.1:9"))).revision == newest.down_revision
    )

    upgrade_database(fresh_url)
    assert asyncio.run(_schema(fresh_url)) == at_head
    assert asyncio.run(database_position(make_settings(fresh_url, "http://127.0.0.1:9"))) == marker


def _migrated_by_a_newer_version(url: str, oldest_code_head: str) -> None:
    """What a newer release's expand (or contract) migration leaves: a revision this code does not know."""
    upgrade_database(url)

    async def write() -> None:
        engine = create_async_engine(to_async_url(url))
        try:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = '9001'"))
                await conn.execute(
                    text("UPDATE schema_compatibility SET oldest_code_head = :h"), {"h": oldest_code_head}
                )
        finally:
            await engine.dispose()

    asyncio.run(write())


@pytest.fixture
def newer_compatible_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'newer.sqlite3'}"
    _migrated_by_a_newer_version(url, oldest_code_head=head_revision())
    return url


@pytest.fixture
def contracted_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'contracted.sqlite3'}"
    _migrated_by_a_newer_version(url, oldest_code_head="9001")  # a contract: only the newer version runs on it
    return url


async def test_a_newer_expand_only_schema_keeps_this_version_serving(newer_compatible_url, emulator_server):
    url = newer_compatible_url
    settings = make_settings(url, emulator_server.base_url)
    await check_database(settings)  # starts
    async with client_for(settings) as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    status = schema_status(await database_position(settings))
    assert status.newer_compatible and status.problem() is None


async def test_a_newer_schema_this_version_cannot_use_is_refused_in_words(contracted_url, emulator_server):
    url = contracted_url
    settings = make_settings(url, emulator_server.base_url)
    with pytest.raises(StartupRefused, match="a newer version migrated it past what this version can use"):
        await check_database(settings)
    async with client_for(settings) as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 503 and "9001" in ready.json()["error"]


def test_db_current_and_upgrade_accept_a_compatible_newer_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'newer.sqlite3'}"
    _migrated_by_a_newer_version(url, oldest_code_head=head_revision())
    current = run(tmp_path, "db", "current", **production_env(url))
    assert current.returncode == 0, current.stdout + current.stderr
    assert "still works on it: nothing to do" in current.stdout
    upgrade = run(tmp_path, "db", "upgrade", **production_env(url))  # the older release's migrate job, rerun
    assert upgrade.returncode == 0 and "nothing to do" in upgrade.stdout, upgrade.stdout + upgrade.stderr


def test_db_downgrade_shows_its_plan_then_undoes_with_yes(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    upgrade_database(url)
    ids = [m.revision for m in shipped_migrations()]
    target = ids[-2]

    shown = run(tmp_path, "db", "downgrade", target, **production_env(url))
    assert shown.returncode == 1 and "add --yes" in shown.stderr
    assert f"from migration {ids[-1]} down to {target}" in shown.stdout and ids[-1] in shown.stdout
    assert run(tmp_path, "db", "current", **production_env(url)).returncode == 0  # nothing changed

    done = run(tmp_path, "db", "downgrade", target, "--yes", **production_env(url))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"is at migration {target}." in done.stdout
    assert (
        f"at migration {target} but this version needs {ids[-1]}"
        in run(tmp_path, "db", "current", **production_env(url)).stdout
    )


def test_db_downgrade_refuses_what_it_cannot_do_safely(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    upgrade_database(url)
    head = head_revision()
    for target, words in (
        ("base", "is not a migration this version ships"),
        ("nope", "is not a migration this version ships"),
        (head, f"not past {head}: nothing to undo"),
    ):
        refused = run(tmp_path, "db", "downgrade", target, "--yes", **production_env(url))
        assert refused.returncode == 1 and words in refused.stderr, (target, refused.stderr)

    newer = f"sqlite:///{tmp_path / 'newer.sqlite3'}"
    _migrated_by_a_newer_version(newer, oldest_code_head=head)
    refused = run(tmp_path, "db", "downgrade", head, "--yes", **production_env(newer))
    assert refused.returncode == 1 and "with the version that migrated it" in refused.stderr
