"""Keeping the state in a JSON file across restarts."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .state import State


def load(path: Path) -> State:
    """The state stored at `path`, or an empty one when the file does not exist yet."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return State()
    state = State.from_json(raw)
    _place_loose_reactions(state, raw.get("reactions") or {})
    return state


def _place_loose_reactions(state: State, reactions: dict[str, list]) -> None:
    """Put reactions that a state file keeps beside the channels (by message id) on their messages, so a
    file in that layout loads without losing them; a message's own reactions win."""
    for message_id, listed in reactions.items():
        for channel in state.channels.values():
            message = channel.message(message_id)
            if message is not None:
                message.reactions = message.reactions or list(listed)
                break


def save(state: State, path: Path) -> None:
    """Write the state atomically: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(state.to_json(), separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
