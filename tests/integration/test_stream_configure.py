"""`onecrew-chat stream configure` against the emulator: the difference first, applied once, then no change.

Webhooks go through Stream's multi-event hooks: the service adds a target of its own and every other target (the
old backend's, which needs reaction.new) keeps every event it has; `--roll-back` removes only ours. On an app
without event hooks the single webhook_url is taken only when free (or when told to).
"""

from __future__ import annotations

import http.server
from collections.abc import Iterator

import pytest
from stream_chat import StreamChat

from onecrew_chat.cli.stream_settings import OUR_HOOK_ID
from tests.integration.cli_inprocess import cli_env, cli_ok
from tests.integration.test_cli import production_env, run
from tests.support import STREAM_KEY, STREAM_SECRET, serve_in_background

URL = "https://chat.example.com/api/chat/webhooks/stream"
OURS = "channel.deleted, member.removed, message.new, message.read, notification.mark_read"


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receivers() -> Iterator[tuple[str, str]]:
    """Two loopback webhook receivers: the old backend's and this service's."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok) for _ in range(2)]
    for server in servers:
        serve_in_background(server)
    yield tuple(f"http://127.0.0.1:{s.server_address[1]}/hooks" for s in servers)  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


def configure(tmp_path, emulator_server, *args):
    done = run(
        tmp_path,
        "stream",
        "configure",
        "--webhook-url",
        URL,
        *args,
        **production_env(f"sqlite:///{tmp_path}/unused.sqlite3", emulator_server),
    )
    done.stdout = "\n".join(" ".join(line.split()) for line in done.stdout.splitlines())  # columns padded to width
    return done


async def configure_inprocess(emulator_server, *args, url: str = URL) -> str:
    out = await cli_ok(cli_env(None, emulator_server), "stream", "configure", "--webhook-url", url, *args)
    return "\n".join(" ".join(line.split()) for line in out.splitlines())


def old_backend_reacts(emulator_server, channel_id: str) -> None:
    """The old backend's traffic: a message and a reaction to it (Stream sends message.new and reaction.new)."""
    sc = StreamChat(STREAM_KEY, STREAM_SECRET, base_url=emulator_server.base_url, timeout=5.0)
    sc.upsert_users([{"id": "onecrew_user_a"}, {"id": "onecrew_user_b"}])
    channel = sc.channel("messaging", channel_id, {"members": ["onecrew_user_a", "onecrew_user_b"]})
    channel.create("onecrew_user_a")
    message = channel.send_message({"text": "hi"}, "onecrew_user_a")["message"]
    channel.send_reaction(message["id"], {"type": "love"}, "onecrew_user_b")


def received(emulator, url: str, channel_id: str) -> set[str]:
    """The event types delivered to `url` about this channel (every delivery finished)."""
    emulator.webhooks.wait_idle()
    return {
        d.event_type
        for d in emulator.webhook_deliveries
        if d.url == url and d.ok and d.payload.get("channel_id") == channel_id
    }


def hooks(emulator) -> list[tuple[str, str | None, list[str]]]:
    with emulator.lock:
        return [(h["id"], h.get("webhook_url"), h["event_types"]) for h in emulator.state.app.get("event_hooks") or []]


async def test_our_hook_is_added_beside_the_old_backends_and_roll_back_removes_only_ours(
    emulator, emulator_server, receivers
):
    old, ours = receivers
    emulator.webhooks.policy.backoff_s = 0.0
    with emulator.lock:
        emulator.state.app.update(
            webhook_url="",
            event_hooks=[
                {"id": "old-backend", "hook_type": "webhook", "enabled": True, "webhook_url": old, "event_types": []},
                {
                    "id": "audit-queue",
                    "hook_type": "sqs",
                    "enabled": True,
                    "sqs_queue_url": "https://sqs.example/q",
                    "sqs_region": "eu-west-1",
                    "event_types": ["user.updated"],
                    "created_at": 1,
                    "updated_at": 1,
                },
            ],
        )
        emulator.state.app["event_hooks"][0].update(created_at=1, updated_at=1)
    before = hooks(emulator)

    dry = await configure_inprocess(emulator_server, "--dry-run", url=ours)
    assert f"event hook (this service) (none) -> webhook {ours}: {OURS} [change]" in dry, dry
    assert f"event hook (kept) webhook {old}: all events -> webhook {old}: all events [kept]" in dry
    assert "event hook (kept) sqs https://sqs.example/q: user.updated" in dry
    assert "Dry run: 1 setting(s) would change; nothing was sent." in dry
    assert emulator.count("UpdateApp") == 0

    applied = await configure_inprocess(emulator_server, url=ours)
    assert "Applied 1 change(s)." in applied, applied
    assert "Until then the main backend keeps sending it" in applied  # push v2: and it still can
    assert hooks(emulator) == [*before, (OUR_HOOK_ID, ours, OURS.split(", "))]
    with emulator.lock:
        assert emulator.state.app["event_hooks"][1]["sqs_region"] == "eu-west-1"

    old_backend_reacts(emulator_server, "after-configure")
    assert {"message.new", "reaction.new"} <= received(emulator, old, "after-configure")
    assert received(emulator, ours, "after-configure") == {"message.new"}

    emulator.clear_requests()
    again = await configure_inprocess(emulator_server, url=ours)
    assert "No change: Stream already has every setting this service needs." in again
    assert emulator.count("UpdateApp") == 0

    rolled = await configure_inprocess(emulator_server, "--roll-back", url=ours)
    assert f"event hook (this service) webhook {ours}: {OURS} -> (none) [change]" in rolled, rolled
    assert "Applied 1 change(s)." in rolled
    assert hooks(emulator) == before
    old_backend_reacts(emulator_server, "after-roll-back")
    assert {"message.new", "reaction.new"} <= received(emulator, old, "after-roll-back")
    assert received(emulator, ours, "after-roll-back") == set()
    assert "Nothing to roll back" in await configure_inprocess(emulator_server, "--roll-back", url=ours)


async def test_push_v3_reaction_push_then_no_change(emulator, emulator_server):
    emulator.state.app["push_notifications"] = {
        "version": "v3",
        "firebase": {"enabled": True},
        "apn": {"enabled": True},
    }
    dry = await configure_inprocess(emulator_server, "--dry-run")
    assert f"event hook (this service) (none) -> webhook {URL}: {OURS} [change]" in dry
    assert "push reaction.new (firebase) off -> on [change]" in dry
    assert "Dry run: 3 setting(s) would change; nothing was sent." in dry
    assert emulator.count("UpdateApp") == 0 and emulator.count("UpsertPushTemplate") == 0

    applied = await configure_inprocess(emulator_server)
    assert "Applied 3 change(s)." in applied, applied
    assert [(url, events) for _, url, events in hooks(emulator)] == [(URL, OURS.split(", "))]
    assert {(t["push_provider_type"], t["enable_push"]) for t in emulator.state.app["push_templates"]} == {
        ("firebase", True),
        ("apn", True),
    }

    emulator.clear_requests()
    again = await configure_inprocess(emulator_server)
    assert "No change: Stream already has every setting this service needs." in again
    assert emulator.count("UpdateApp") == 0 and emulator.count("UpsertPushTemplate") == 0


async def test_without_event_hooks_the_old_backends_webhook_url_is_not_taken_unless_told(
    emulator, emulator_server, receivers
):
    old, ours = receivers
    emulator.webhooks.policy.backoff_s = 0.0
    with emulator.lock:
        emulator.state.app.update({"_multi_event_hooks": False, "webhook_url": old, "webhook_events": []})

    kept = await configure_inprocess(emulator_server, url=ours)
    assert "Event hooks: not available on this app" in kept, kept
    assert f"held by {old}. Not taken: that target keeps every event it has (reaction.new included)." in kept
    assert "Nothing sent: see the note above." in kept
    assert emulator.state.app["webhook_url"] == old and emulator.state.app["webhook_events"] == []
    old_backend_reacts(emulator_server, "legacy")
    assert {"message.new", "reaction.new"} <= received(emulator, old, "legacy")

    taken = await configure_inprocess(emulator_server, "--take-webhook-url", url=ours)
    assert f"taken from {old} (--take-webhook-url)" in taken and "Applied 1 change(s)." in taken, taken
    assert emulator.state.app["webhook_url"] == ours
    assert sorted(emulator.state.app["webhook_events"]) == OURS.split(", ")


def test_a_free_webhook_url_is_set_through_the_installed_command(tmp_path, emulator, emulator_server):
    emulator.state.app["_multi_event_hooks"] = False
    result = configure(tmp_path, emulator_server)
    assert result.returncode == 0, result.stderr
    assert "Reaction push: the app is on push v2; Stream pushes reaction.new only on push v3" in result.stdout
    assert "Event hooks: not available on this app" in result.stdout
    assert "set to this service, with the events it applies." in result.stdout
    assert "Applied 1 change(s)." in result.stdout
    assert emulator.state.app["webhook_url"] == URL
