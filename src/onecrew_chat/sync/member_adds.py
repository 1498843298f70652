"""A large group's member additions, spread within Stream's UpdateChannel limit across runs and across time.

Stream allows 300 UpdateChannel calls a minute (10 a second) per app, and adds at most 100 members per call: a
1,000-member group needs 9 calls besides its create, so a few such groups at once need more than one 3 s
deadline can hold. Each call therefore waits for its turn on the process's UpdateChannel pacer (sync/pacing.py,
fed by the rate-limit headers of Stream's answers) instead of being sent into a 429; a turn that would come after
the run's deadline is not waited for: the run stops there (DeadlineExceeded, so a create answers its documented
provisioning state) and the outbox worker's next attempt goes on. What Stream accepted is remembered per channel
for the process (`MemberProgress`), so that attempt sends only the members still to add rather than the whole
group again; a run in another process, which has no such memory, adds them again (harmless, only slower).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import TYPE_CHECKING

from onecrew_chat.runtime import Runtime, Shared
from onecrew_chat.stream.client import MAX_BATCH as MAX_MEMBERS
from onecrew_chat.stream.client import ChannelState, StreamGateway
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import chunks
from onecrew_chat.sync.pacing import Pacer, take_turn

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

UPDATE_CHANNEL = "UpdateChannel"
# Channels whose accepted members a process remembers (the oldest forgotten first): far more than are ever
# provisioning at once.
REMEMBERED_CHANNELS = 1000


class MemberProgress:
    """Per channel, the members Stream accepted in this process's add calls (until the channel is ready)."""

    def __init__(self, limit: int = REMEMBERED_CHANNELS) -> None:
        self.limit = limit
        self._added: OrderedDict[str, set[str]] = OrderedDict()

    def added(self, cid: str) -> set[str]:
        """The members an add call of this process got into the channel."""
        return self._added.get(cid) or set()

    def accepted(self, cid: str, member_ids: list[str]) -> None:
        """Stream accepted an add call of these members."""
        self._added.setdefault(cid, set()).update(member_ids)
        self._added.move_to_end(cid)
        while len(self._added) > self.limit:
            self._added.popitem(last=False)

    def forget(self, cid: str) -> None:
        """The channel holds everyone: nothing more to remember."""
        self._added.pop(cid, None)


_PACER = Shared("UpdateChannel pacer", lambda runtime: Pacer(runtime.stream, UPDATE_CHANNEL))
_PROGRESS = Shared("accepted member additions", lambda _runtime: MemberProgress())


def update_channel_pacer(runtime: Runtime) -> Pacer:
    """The process's UpdateChannel pacer (one per runtime: every run's additions share Stream's limit)."""
    return runtime.shared(_PACER)


def member_progress(runtime: Runtime) -> MemberProgress:
    """The process's memory of accepted member additions (one per runtime)."""
    return runtime.shared(_PROGRESS)


def members_to_add(member_ids: list[str], state: ChannelState) -> tuple[list[str], list[str]]:
    """(to add, known missing): the members Stream's answer does not show, and those of them surely absent.

    Stream shows at most 100 members; when the channel has more, members not shown may well be there, so they are
    added again (harmless) without being reported as missing. Only a complete answer proves a member absent.
    """
    shown = set(state.member_ids)
    to_add = [m for m in member_ids if m not in shown]
    complete = state.member_count is None or state.member_count <= len(state.member_ids)
    return to_add, [m for m in member_ids[:MAX_MEMBERS] if m not in shown] if complete else []


async def add_members(
    stream: StreamGateway,
    state: ChannelState,
    to_add: list[str],
    deadline: Deadline,
    *,
    repair: Callable[[list[str]], Awaitable[None]],
    pacer: Pacer | None = None,
    progress: MemberProgress | None = None,
) -> int:
    """Add the members not yet in the channel, 100 per call and a few calls at once, each in its pacer's turn.

    Returns how many were sent. Members an earlier run of this process got in are left out; every call still ends
    (none is cancelled midway), and the first failure (a turn past the deadline included) is raised after all.
    """
    kind, channel_id = state.channel_type, state.channel_id
    if progress is not None:
        done = progress.added(state.cid)
        to_add = [m for m in to_add if m not in done]

    async def add(members: list[str]) -> None:
        if pacer is not None:
            await take_turn(pacer, deadline)
        await deadline.run(partial(stream.add_members, kind, channel_id, members), repair=repair, name=UPDATE_CHANNEL)
        if progress is not None:
            progress.accepted(state.cid, members)

    await deadline.each([partial(add, members) for members in chunks(to_add)])
    return len(to_add)
