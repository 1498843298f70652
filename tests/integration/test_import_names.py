"""Users and companies the import used to reject for their name keep their channels: imported under a fallback
(empty name) or a shortened name (too long), listed in the summary, and adopted by `import channels` afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy import select

from onecrew_chat.accounts.directory_import import SourceRow
from onecrew_chat.accounts.directory_import.kinds import COMPANIES, USERS
from onecrew_chat.accounts.directory_import.runner import run_import
from onecrew_chat.cli.imports import print_summary
from onecrew_chat.models import Company, User
from onecrew_chat.sync.cutover.run import import_channels
from tests.old_backend import OldChannel, seed_channel, stream_user
from tests.support import new_id


class Rows:
    name, position_word = "memory", "line"

    def __init__(self, rows: list[dict]):
        self.rows = rows

    async def total(self) -> int:
        return len(self.rows)

    async def chunks(self, size: int) -> AsyncIterator[list[SourceRow]]:
        yield [SourceRow(i + 1, row) for i, row in enumerate(self.rows)]

    async def close(self) -> None:
        pass


async def test_empty_and_overlong_names_are_imported_and_their_channels_adopted(runtime, emulator):
    amr, blank, spaces, longer, company = new_id(), new_id(), new_id(), new_id(), new_id()
    people = [
        {"id": amr, "name": "Amr"},
        {"id": blank, "name": ""},
        {"id": spaces, "name": "   ", "category": "crew"},
        {"id": longer, "name": "N" * 300},
    ]
    users = await run_import(runtime.sessionmaker, USERS, Rows(people))
    companies = await run_import(runtime.sessionmaker, COMPANIES, Rows([{"id": company, "name": None}]))
    assert users.ok and companies.ok and users.counts["created"] == 4 and companies.counts["created"] == 1
    shown: list[str] = []
    print_summary(users, shown.append)
    assert "  line 2: empty name: imported as 'OneCrew user'" in shown
    assert "  line 4: name of 300 characters: cut to 255" in shown
    async with runtime.sessionmaker() as session:
        names = dict((await session.execute(select(User.id, User.name))).all())
        assert await session.scalar(select(Company.name)) == "OneCrew company"
    assert names[blank] == names[spaces] == "OneCrew user" and names[longer] == "N" * 254 + "…"

    ids = [f"onecrew_user_{i}" for i in (amr, blank, spaces, longer)] + [f"onecrew_company_{company}"]
    for stream_id in ids:
        stream_user(emulator, stream_id, "x")
    for index, other in enumerate(ids[1:]):
        seed_channel(emulator, OldChannel(f"old-pair-{index}", [ids[0], other], [(other, "hi", 60)]))
    report = await import_channels(runtime)
    assert sorted(p["channel_id"] for p in report.pairs) == [f"old-pair-{i}" for i in range(4)]
    assert report.skipped == []
