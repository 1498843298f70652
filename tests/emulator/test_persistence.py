"""The state file: written atomically after writes, read back by the next emulator."""

from __future__ import annotations

import json
import time

from stream_chat import StreamChat

from stream_emulator import Emulator, EmulatorServer

from .conftest import KEY, SECRET


def test_state_survives_a_restart(tmp_path):
    state_file = tmp_path / "emulator" / "state.json"
    first = Emulator(api_key=KEY, api_secret=SECRET, state_file=state_file)
    assert not state_file.exists()  # constructing does no I/O
    with EmulatorServer(first) as server:
        client = StreamChat(KEY, SECRET, base_url=server.base_url)
        client.upsert_users([{"id": "ann", "kind": "user"}, {"id": "bob"}])
        channel = client.channel("messaging", "kept", {"members": ["ann", "bob"], "name": "K"})
        channel.create("ann")
        channel.send_message({"text": "remember me"}, "ann")
    stored = json.loads(state_file.read_text())
    assert {u["id"] for u in stored["users"]} == {"ann", "bob"}
    assert list(tmp_path.joinpath("emulator").iterdir()) == [state_file]  # no temp files left

    second = Emulator(api_key=KEY, api_secret=SECRET, state_file=state_file)
    assert second.get_user("ann")["kind"] == "user"
    with EmulatorServer(second) as server:
        client = StreamChat(KEY, SECRET, base_url=server.base_url)
        again = client.query_channels({"cid": "messaging:kept"})["channels"][0]
        assert [m["user_id"] for m in again["members"]] == ["ann", "bob"]
        assert again["messages"][0]["text"] == "remember me"
        assert again["channel"]["name"] == "K"
        assert client.unread_counts("bob")["total_unread_count"] == 1


def test_reset_also_empties_the_state_file(tmp_path):
    state_file = tmp_path / "state.json"
    emulator = Emulator(state_file=state_file)
    with EmulatorServer(emulator) as server:
        StreamChat("key", "secret", base_url=server.base_url).upsert_user({"id": "gone"})
    emulator.reset()
    assert json.loads(state_file.read_text())["users"] == []
    assert Emulator(state_file=state_file).user_ids() == set()


def test_writes_reach_the_file_while_serving(tmp_path):
    state_file = tmp_path / "state.json"
    emulator = Emulator(state_file=state_file)
    with EmulatorServer(emulator) as server:
        client = StreamChat("key", "secret", base_url=server.base_url)
        for i in range(20):  # a burst shares writes
            client.upsert_user({"id": f"burst-{i}"})
        deadline = time.monotonic() + 30
        while not (state_file.exists() and len(json.loads(state_file.read_text())["users"]) == 20):
            assert time.monotonic() < deadline, "state file not written in time"
            time.sleep(0.01)
