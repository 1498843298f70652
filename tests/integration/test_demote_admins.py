"""`onecrew-chat stream demote-admins` against the emulator: Stream's own admin list, whatever the directory holds.

The old backend left app-wide admins in OneCrew's id space that no directory step reaches: companies since
soft-deleted, `onecrew_company_<user uuid>` ghosts of its guess, deactivated users. The repair demotes every one
of them (paged and batched past 100, through a 429), leaves admins outside OneCrew's id space alone, keeps the
rest of each profile, and a second run changes nothing.
"""

from __future__ import annotations

import json
import uuid

from tests.integration.cli_inprocess import cli_env, cli_ok
from tests.old_backend import stream_user

OPS = "ops-dashboard-admin"  # an admin the operators made themselves: not OneCrew's to change


def seed_admins(emulator) -> list[str]:
    ghosts = [f"onecrew_company_{uuid.uuid4()}" for _ in range(140)]  # ids the directory does not hold
    for ghost in ghosts:
        stream_user(emulator, ghost, "Ghost Academy", role="admin", image="https://logo.example/g.png")
    user_admin = f"onecrew_user_{uuid.uuid4()}"
    stream_user(emulator, user_admin, "Amr", role="admin")
    retired = f"onecrew_company_{uuid.uuid4()}"
    stream_user(emulator, retired, "Closed Company", role="admin")
    with emulator.lock:
        emulator.state.users[retired].deactivated_at = 1
    stream_user(emulator, OPS, "Ops", role="admin")
    stream_user(emulator, f"onecrew_user_{uuid.uuid4()}", "Nour")  # already a plain user
    return [*ghosts, user_admin, retired]


def admins_left(emulator) -> set[str]:
    with emulator.lock:
        return {u.id for u in emulator.state.users.values() if u.role == "admin"}


async def test_every_admin_in_onecrews_id_space_is_demoted_and_a_second_run_changes_nothing(emulator, emulator_server):
    ours = seed_admins(emulator)
    env = cli_env(None, emulator_server)

    dry = await cli_ok(env, "stream", "demote-admins", "--dry-run")
    assert "Stream users with the app-wide admin role: 143" in dry
    assert "In OneCrew's id space, would demote to role user: 142." in dry
    assert f"Left alone (not OneCrew ids): 1: {OPS}." in dry and "Dry run: nothing was sent." in dry
    assert len(dry.splitlines()) < 40, "the text form lists a bounded number of ids"
    assert admins_left(emulator) == {*ours, OPS} and emulator.count("UpdateUsersPartial") == 0

    emulator.faults.rate_limit_burst("QueryUsers", count=1, reset_in_s=0.2)
    report = json.loads(await cli_ok(env, "stream", "demote-admins", "--json"))
    assert sorted(report["demoted"]) == sorted(ours) and report["left_alone"] == [OPS]
    assert admins_left(emulator) == {OPS}
    ghost = emulator.get_user(ours[0])
    assert (ghost["role"], ghost["name"], ghost["image"]) == ("user", "Ghost Academy", "https://logo.example/g.png")
    assert emulator.count("UpdateUsersPartial") <= 2, "142 demotions in batches of up to 100"

    emulator.clear_requests()
    again = await cli_ok(env, "stream", "demote-admins")
    assert "Nothing to change: no user in OneCrew's id space has the admin role." in again
    assert emulator.count("UpdateUsersPartial") == 0 and emulator.count("QueryUsers") <= 1
