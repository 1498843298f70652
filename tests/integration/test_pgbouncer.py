"""Through a real PgBouncer in transaction mode (Debian's `pgbouncer`; skipped where it is not installed).

The default settings fail there (a statement asyncpg prepared on one server connection is looked for on another);
ONECREW_DB_TRANSACTION_POOLER=true makes the service's database work pass through it: creates, the outbox,
readiness and the unread count, with the unread LISTEN on ONECREW_DB_LISTEN_URL (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from onecrew_chat import dbadmin
from onecrew_chat.db import make_engine, upgrade_database
from tests.api.test_create_conversation import create
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.factories import add_company, add_user
from tests.support import wait_until

DEADLINE_S = 30
CONFIG = """\
[databases]
* = host={host} port={port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
auth_type = trust
auth_file = {auth_file}
pool_mode = transaction
default_pool_size = 2
unix_socket_dir =
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pgbouncer(postgres_url):
    """(URL through PgBouncer, URL of PostgreSQL itself) for a fresh migrated database."""
    binary = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )
    if binary is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    run_as: list[str] = []
    if os.geteuid() == 0:  # PgBouncer refuses to run as root: it switches to the postgres user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user for pgbouncer -u")
        run_as = ["-u", "postgres"]
    name = f"onecrew_pgb_{uuid.uuid4().hex[:8]}"
    direct = asyncio.run(dbadmin.create_database(PG_ADMIN_URL, name))
    upgrade_database(direct)  # migrations go to PostgreSQL itself, never through the pooler
    server = make_url(direct)
    folder = Path(tempfile.mkdtemp(prefix="onecrew-pgbouncer-"))
    folder.chmod(0o755)  # readable by the user pgbouncer switches to
    listen = _free_port()
    auth_file = folder / "userlist.txt"
    auth_file.write_text(f'"{server.username}" ""\n')
    config = folder / "pgbouncer.ini"
    config.write_text(CONFIG.format(host=server.host, port=server.port or 5432, listen=listen, auth_file=auth_file))
    for path in (auth_file, config):
        path.chmod(0o644)
    process = subprocess.Popen([binary, *run_as, str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode() if process.stdout else "pgbouncer ended"
                assert time.monotonic() < deadline, "pgbouncer did not listen in time"
                time.sleep(0.05)  # polling interval of a deadline-bounded wait
        yield server.set(port=listen).render_as_string(hide_password=False), direct
    finally:
        process.terminate()
        process.wait(timeout=DEADLINE_S)
        shutil.rmtree(folder, ignore_errors=True)
        asyncio.run(dbadmin.drop_database(PG_ADMIN_URL, name))


async def _reuse_after_another_client(settings) -> None:
    """A statement run again in a new transaction while another client holds the first server connection."""
    engine = make_engine(settings)
    try:
        async with engine.connect() as first:
            await first.execute(text("SELECT count(*) FROM conversation"))
            await first.commit()
            async with engine.connect() as second:
                await second.execute(text("SELECT count(*) FROM company"))  # takes the server connection `first` used
                await first.execute(text("SELECT count(*) FROM conversation"))  # so this runs on another one
    finally:
        await engine.dispose()


def test_the_default_settings_fail_behind_a_transaction_pooler(pgbouncer):
    through, _ = pgbouncer
    settings = make_settings(through, "http://127.0.0.1:9")
    with pytest.raises(Exception, match="prepared statement .* does not exist"):
        asyncio.run(_reuse_after_another_client(settings))


def test_transaction_pooler_setting_reuses_nothing_by_name(pgbouncer):
    through, _ = pgbouncer
    asyncio.run(_reuse_after_another_client(make_settings(through, "http://127.0.0.1:9", db_transaction_pooler=True)))


async def test_the_service_works_through_pgbouncer(pgbouncer, emulator, emulator_server):
    from onecrew_chat.api.app import create_app

    through, direct = pgbouncer
    # Every create must answer ready: a deadline a loaded CI machine cannot miss (the test's own 3 s can be).
    settings = make_settings(
        through,
        emulator_server.base_url,
        db_transaction_pooler=True,
        db_listen_url=direct,
        db_pool_size=4,
        provision_deadline_s=DEADLINE_S,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            async with app.state.runtime.sessionmaker() as session:
                owner = await add_user(session, "Owner")
                company = await add_company(session, "Lolo Academy", owner=owner)
                others = [await add_user(session, f"Crew {n}") for n in range(4)]
            answers = await asyncio.gather(
                *(
                    create(
                        http,
                        owner,
                        {"conversation_type": "user_company", "participant_ids": [o], "company_id": company},
                    )
                    for o in others
                )
            )
            assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
            assert {a.json()["data"]["chat"]["status"] for a in answers} == {"ready"}
            again = await create(
                http,
                owner,
                {"conversation_type": "user_company", "participant_ids": [others[0]], "company_id": company},
            )
            assert again.json()["data"]["id"] == answers[0].json()["data"]["id"]
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            unread = await http.get("/api/chat/conversations/unread-count?profile_type=user", headers=_auth(others[0]))
            assert unread.status_code == 200, unread.text
            # The unread LISTEN holds a session of its own on PostgreSQL itself, not through the pooler.
            await wait_until(lambda: _listening(direct), timeout=DEADLINE_S)


async def _listening(direct: str) -> bool:
    engine = make_engine(url=direct)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
            return bool(found.scalar())
    finally:
        await engine.dispose()


def _auth(sub: str) -> dict[str, str]:
    from tests.support import auth

    return auth(sub)
