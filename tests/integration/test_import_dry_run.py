"""`onecrew-chat import users|companies|members --dry-run`: every row read and judged as a real run would, nothing written.

The commands run in-process (tests/integration/cli_inprocess.py): what is tested is what the dry run reads, reports
and leaves unwritten; tests/integration/test_import_files.py runs the installed command as a process.
"""

from __future__ import annotations

import json

from onecrew_chat.models import User
from tests.integration.cli_inprocess import cli_env, invoke
from tests.integration.directory_files import jsonl, table, users, write
from tests.support import new_id


async def test_a_dry_run_reports_what_a_run_would_do_and_writes_nothing(tmp_path, database_url, emulator_server):
    env = cli_env(database_url, emulator_server)
    good = users(3)
    path = write(
        tmp_path / "users.jsonl",
        jsonl([good[0], {"id": new_id(), "name": "X", "category": "x" * 40}, good[1], good[2]]),
    )

    dry = await invoke(env, "import", "users", str(path), "--dry-run")
    assert dry.exit_code == 1, dry.output  # a rejected row fails the check, as it fails the import
    assert "Dry run of the import of users from" in dry.stdout
    assert "3 would be created, 0 would be updated, 0 unchanged, 1 rejected" in dry.stdout
    assert "line 2: category: String should have at most 32 characters" in dry.stdout
    assert "Dry run: nothing was written." in dry.stdout
    assert await table(database_url, User.id) == []

    clean = write(tmp_path / "clean.jsonl", jsonl(good))
    assert (await invoke(env, "import", "users", str(clean))).exit_code == 0
    renamed = write(tmp_path / "renamed.jsonl", jsonl([{**good[0], "name": "Renamed"}, good[1], good[2]]))
    again = await invoke(env, "import", "users", str(renamed), "--dry-run", "--json")
    assert again.exit_code == 0, again.output
    result = json.loads(again.stdout.strip().splitlines()[-1])
    assert result["dry_run"] is True
    assert {k: result[k] for k in ("created", "updated", "unchanged", "rejected")} == {
        "created": 0,
        "updated": 1,
        "unchanged": 2,
        "rejected": 0,
    }
    assert ("Renamed",) not in await table(database_url, User.name)
