"""`stream-emulator`: serve the emulator on its own. `run` is a plain typer-annotated function so
another CLI can mount it (`app.command("stream-emulator")(stream_emulator.cli.run)`).

The emulator, its ASGI app and uvicorn are imported when `run` runs: a CLI that mounts it reads only the signature
when it starts, and should not pay for a server it may not start."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import uvicorn

    from .emulator import Emulator


def _pairs(values: list[str], flag: str) -> list[tuple[str, list[str]]]:
    """ "Operation=a[:b]" -> (Operation, [a, b])."""
    pairs = []
    for value in values:
        operation, sep, rest = value.partition("=")
        if not sep or not operation:
            raise typer.BadParameter(f"expected Operation=VALUE, got {value!r}", param_hint=flag)
        pairs.append((operation, rest.split(":")))
    return pairs


def fault_spec(
    latency_ms: float,
    jitter_ms: float,
    error_rate: list[str],
    rate_limit: list[str],
    timeout_after_write: list[str],
    visibility_delay_ms: float,
    webhook_failures: str | None = None,
) -> dict:
    """The admin-path fault JSON for the command-line flags."""
    spec: dict = {"latency_ms": latency_ms, "jitter_ms": jitter_ms, "visibility_delay_ms": visibility_delay_ms}
    try:
        if webhook_failures:
            count, _, status = webhook_failures.partition(":")
            spec["webhook_failures"] = {"count": int(count), "status": int(status or 503)}
        spec["error_rates"] = {
            op: {"rate": float(v[0]), "status": int(v[1]) if len(v) > 1 else 500}
            for op, v in _pairs(error_rate, "--error-rate")
        }
        spec["rate_limit_bursts"] = {
            op: {"count": int(v[0]), "reset_in_s": float(v[1]) if len(v) > 1 else 60.0}
            for op, v in _pairs(rate_limit, "--rate-limit")
        }
        spec["timeout_after_write"] = {
            op: {"count": int(v[0]), "hold_s": float(v[1]) if len(v) > 1 else 30.0}
            for op, v in _pairs(timeout_after_write, "--timeout-after-write")
        }
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return spec


def run(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 8900,
    api_key: Annotated[str, typer.Option(help="The API key clients must send.")] = "key",
    api_secret: Annotated[str, typer.Option(help="The secret tokens are signed with.")] = "secret",
    state_file: Annotated[Path | None, typer.Option(help="Keep the state in this JSON file across restarts.")] = None,
    enable_admin: Annotated[bool, typer.Option(help="Serve the admin path under /_emulator/.")] = False,
    latency_ms: Annotated[float, typer.Option(help="Added latency per response.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Random extra latency, 0..N ms.")] = 0.0,
    error_rate: Annotated[
        list[str] | None, typer.Option(help="Operation=RATE[:STATUS], e.g. UpdateUsers=0.2:503; '*' = all operations.")
    ] = None,
    rate_limit: Annotated[
        list[str] | None, typer.Option(help="Operation=COUNT[:RESET_S]: the next COUNT calls get 429.")
    ] = None,
    timeout_after_write: Annotated[
        list[str] | None, typer.Option(help="Operation=COUNT[:HOLD_S]: apply the write, never answer.")
    ] = None,
    visibility_delay_ms: Annotated[
        float, typer.Option(help="New users become usable as members only after N ms.")
    ] = 0.0,
    webhook_failures: Annotated[
        str | None,
        typer.Option(
            help="COUNT[:STATUS]: the next COUNT webhook tries reach the receiver but count as STATUS "
            "(default 503; 0 = timed out), so Stream's retry follows."
        ),
    ] = None,
    rate_limits: Annotated[
        bool,
        typer.Option(
            "--rate-limits/--no-rate-limits",
            help="Refuse calls over Stream's per-minute and per-second limits with 429.",
        ),
    ] = True,
    event_hooks: Annotated[
        bool,
        typer.Option(
            "--event-hooks/--no-event-hooks",
            help="Play an app with Stream's multi-event hooks (the default) or one not migrated yet (one webhook_url).",
        ),
    ] = True,
) -> None:
    """Serve a local, wire-compatible Stream Chat (both dialects) until interrupted."""
    import uvicorn

    from .admin import apply_faults
    from .emulator import Emulator
    from .handlers.app_settings import MULTI_EVENT_HOOKS
    from .server import listening_socket

    emulator = Emulator(api_key=api_key, api_secret=api_secret, state_file=state_file, rate_limits=rate_limits)
    apply_faults(
        emulator.faults,
        fault_spec(
            latency_ms,
            jitter_ms,
            error_rate or [],
            rate_limit or [],
            timeout_after_write or [],
            visibility_delay_ms,
            webhook_failures,
        ),
    )
    emulator.load()
    if not event_hooks:
        emulator.state.app[MULTI_EVENT_HOOKS] = False
    sock = listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    typer.echo(f"stream emulator listening on http://{host}:{bound_port}")
    typer.echo(f"api key: {api_key}")
    if state_file is not None:
        typer.echo(f"state file: {state_file}")
    typer.echo(
        "rate limits: "
        + ("enforced (Stream's per-minute and per-second limits)" if rate_limits else "headers only (--no-rate-limits)")
    )
    if not event_hooks:
        typer.echo("event hooks: not available (an app with a single webhook_url)")
    if enable_admin:
        typer.echo(f"admin: http://{host}:{bound_port}/_emulator/state")
    for line in emulator.faults.describe():
        typer.echo(f"fault: {line}")
    uvicorn.Server(uvicorn_config(emulator, enable_admin)).run(sockets=[sock])


def uvicorn_config(emulator: Emulator, enable_admin: bool) -> uvicorn.Config:
    """uvicorn's settings for the stand-alone emulator."""
    import uvicorn

    from .app import EmulatorApp

    return uvicorn.Config(
        EmulatorApp(emulator, enable_admin=enable_admin),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
        ws="websockets-sansio",
    )


def main() -> None:
    """Entry point of `python -m stream_emulator`."""
    typer.run(run)
