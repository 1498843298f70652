"""What every command shares: settings loaded from the environment, refusals in one line, shared options."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from onecrew_chat.config import Settings

# Options several commands share, written once.
JsonReport = Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")]
RetrySkipped = Annotated[
    bool,
    typer.Option("--retry-skipped", help="Decide again the channels earlier runs skipped (e.g. unknown members)."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `onecrew-chat: <message>` on stderr and exit with `code`."""
    typer.echo(f"onecrew-chat: {message}", err=True)
    raise typer.Exit(code)


def settings_problems(exc: Exception) -> list[str]:
    """One `NAME: what is wrong` per invalid setting (never the value: it may be a secret)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if not error["loc"]:  # the settings as a whole (onecrew_chat.config_checks): one problem per line
                problems.extend(message.splitlines())
                continue
            name = str(error["loc"][0]).upper()
            problems.append(f"{name}: {message}")
        return problems
    return [str(exc).splitlines()[0][:300]]


def load_settings() -> Settings:
    """Settings from the environment, with logging configured; exit 2 with one line per invalid setting.

    Every ONECREW_* variable that is not a setting, and every STREAM_* one close to a setting's name, is warned
    about first (one line each, with the closest known name): a misspelt one is the likeliest reason a setting
    seems missing.
    """
    import os

    from pydantic import ValidationError
    from pydantic_settings.exceptions import SettingsError

    from onecrew_chat.config import Settings, unknown_setting_warnings
    from onecrew_chat.logging import configure_logging

    for warning in unknown_setting_warnings(dict(os.environ)):
        typer.echo(f"onecrew-chat: warning: {warning}", err=True)
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        for problem in settings_problems(exc):
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_format, settings.log_level)
    return settings


def require_migrated(settings: Settings) -> None:
    from onecrew_chat.cli.serve import StartupRefused, check_database

    try:
        asyncio.run(check_database(settings))
    except StartupRefused as exc:
        fail(str(exc))


def require_stream(settings: Settings) -> None:
    if not settings.stream_api_key or not settings.stream_api_secret:
        fail(
            "set STREAM_API_KEY and STREAM_API_SECRET (and STREAM_BASE_URL) for this command; "
            "the embedded emulator only lives inside `onecrew-chat serve`"
        )
