"""`onecrew-chat stream configure` against the emulator: the difference first, applied once, then no change."""

from __future__ import annotations

from tests.integration.cli_inprocess import cli_env, cli_ok
from tests.integration.test_cli import production_env, run

URL = "https://chat.example.com/api/chat/webhooks/stream"


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


async def configure_inprocess(emulator_server, *args) -> str:
    out = await cli_ok(
        cli_env(None, emulator_server, ONECREW_MODE="development"), "stream", "configure", "--webhook-url", URL, *args
    )
    return "\n".join(" ".join(line.split()) for line in out.splitlines())


async def test_dry_run_then_apply_then_no_change(emulator, emulator_server):
    emulator.state.app["push_notifications"] = {
        "version": "v3",
        "firebase": {"enabled": True},
        "apn": {"enabled": True},
    }
    dry = await configure_inprocess(emulator_server, "--dry-run")
    assert f"webhook_url (none) -> {URL} [change]" in dry
    assert "push reaction.new (firebase) off -> on [change]" in dry
    assert "Dry run: 4 setting(s) would change; nothing was sent." in dry
    assert emulator.count("UpdateApp") == 0 and emulator.count("UpsertPushTemplate") == 0

    applied = await configure_inprocess(emulator_server)
    assert "Applied 4 change(s)." in applied, applied
    assert emulator.state.app["webhook_url"] == URL
    assert set(emulator.state.app["webhook_events"]) == {
        "message.new",
        "message.read",
        "notification.mark_read",
        "channel.deleted",
        "member.removed",
    }
    assert {(t["push_provider_type"], t["enable_push"]) for t in emulator.state.app["push_templates"]} == {
        ("firebase", True),
        ("apn", True),
    }

    emulator.clear_requests()
    again = await configure_inprocess(emulator_server)
    assert "No change: Stream already has every setting this service needs." in again
    assert emulator.count("UpdateApp") == 0 and emulator.count("UpsertPushTemplate") == 0


def test_push_v2_says_what_stream_cannot_do_through_the_installed_command(tmp_path, emulator, emulator_server):
    result = configure(tmp_path, emulator_server)
    assert result.returncode == 0, result.stderr
    assert "Reaction push: the app is on push v2; Stream pushes reaction.new only on push v3" in result.stdout
    assert "Applied 2 change(s)." in result.stdout
