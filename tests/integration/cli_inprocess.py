"""`onecrew-chat` commands run in-process (typer's runner in a worker thread, as they call asyncio.run themselves).

Much faster than a subprocess per command; tests/integration/test_cli.py covers the installed entry point itself.
"""

from __future__ import annotations

import asyncio
import os

from typer.testing import CliRunner, Result

from tests.support import JWT_SECRET, SERVICE_TOKEN, STREAM_KEY, STREAM_SECRET, logging_kept

_PREFIXES = ("ONECREW_", "STREAM_", "DATABASE_URL")


def cli_env(database_url: str | None, emulator_server, **extra: str) -> dict[str, str | None]:
    """The command's settings: the test database, the emulator as Stream; every other onecrew setting unset.

    Without a database (commands that talk to Stream alone) the mode is development: production needs every setting.
    """
    env: dict[str, str | None] = {key: None for key in os.environ if key.startswith(_PREFIXES)}
    env.update(
        STREAM_API_KEY=STREAM_KEY,
        STREAM_API_SECRET=STREAM_SECRET,
        STREAM_BASE_URL=emulator_server.base_url,
        ONECREW_JWT_SECRET=JWT_SECRET,
        ONECREW_SERVICE_TOKEN=SERVICE_TOKEN,
        ONECREW_LOG_LEVEL="warning",
        **extra,
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    elif env.get("ONECREW_MODE") is None:
        env["ONECREW_MODE"] = "development"
    return env


async def invoke(env: dict[str, str | None], *args: str) -> Result:
    """Run `onecrew-chat ARGS` to completion, then put logging back as it was.

    The command configures structlog and the root logger with the runner's stderr, which is closed once the
    command returns: later tests in this process would log into a closed file.
    """
    from onecrew_chat.cli.main import app

    with logging_kept():
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env, catch_exceptions=False)


async def cli_ok(env: dict[str, str | None], *args: str) -> str:
    """stdout of a command that must succeed."""
    result = await invoke(env, *args)
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}"
    return result.stdout
