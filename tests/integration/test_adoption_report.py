"""The `import channels` report on a cut-over of real size: each damaged identity once, the text form bounded."""

from __future__ import annotations

from onecrew_chat.sync.cutover.report import SHOWN_PER_SECTION
from onecrew_chat.sync.cutover.run import import_channels
from tests.factories import add_company, add_users
from tests.old_backend import OldChannel, seed_channel, stream_user


async def test_a_damaged_identity_in_many_batches_is_reported_and_repaired_once(runtime, emulator):
    async with runtime.sessionmaker() as session:
        people = await add_users(session, 230, prefix="Crew")
        sat = await add_company(session, "Sat Education")
    company = f"onecrew_company_{sat}"
    stream_user(emulator, company, "Sat Education", role="admin")  # the old backend's admin company
    for index, person in enumerate(people):
        member = f"onecrew_user_{person}"
        stream_user(emulator, member, "Crew")
        seed_channel(emulator, OldChannel(f"user_company-old-{index:04d}", [company, member], [(member, "hi", 60)]))

    report = await import_channels(runtime)  # 230 channels: three batches of up to 100 each show Sat damaged

    assert len(report.pairs) == 230
    assert report.repaired == [{"stream_id": company, "problem": "role admin"}]
    assert emulator.get_user(company)["role"] == "user"
    lines = report.lines()
    assert len([line for line in lines if line.startswith("  pair ")]) == SHOWN_PER_SECTION
    assert f"  ... and {230 - SHOWN_PER_SECTION} more pairs (--json lists every one)" in lines
    assert len(lines) < 2 * SHOWN_PER_SECTION and len(report.as_json()["adopted_pairs"]) == 230
