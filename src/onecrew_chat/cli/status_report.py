"""`onecrew-chat status`: the report of onecrew_chat.observability.status as a rich table, or as JSON."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from onecrew_chat.config import Settings
from onecrew_chat.observability.status import Status, gather_status
from onecrew_chat.runtime import build_runtime


async def collect(settings: Settings) -> Status:
    """The status report with a runtime of its own."""
    runtime = build_runtime(settings)
    try:
        return await gather_status(runtime)
    finally:
        await runtime.close()


def to_json(status: Status) -> str:
    """The report as the JSON GET /api/internal/status answers in `data`."""
    return json.dumps(status.model_dump(mode="json"), indent=2, sort_keys=True)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()) if count) or "none"


def rows(status: Status) -> list[tuple[str, str, str]]:
    """(part, state, detail) for each line of the table."""
    db, stream = status.database, status.stream
    out = [
        ("version", "-", f"{status.version} (this command)"),
        (
            "mode",
            status.mode,
            "development fallbacks in use" if status.mode == "development" else "every setting given",
        ),
        ("database", "ok" if db.reachable else "DOWN", f"answered in {db.ms:g} ms" if db.reachable else str(db.error)),
        (
            "migrations",
            "ok" if db.migrated else "BEHIND",
            f"at {db.migration or '-'}, head {db.head}"
            + (" (newer, and this version still works on it)" if db.newer_compatible else ""),
        ),
    ]
    if not stream.configured:
        embedded = status.mode == "development"
        out.append(("stream", "embedded" if embedded else "NOT SET", stream.target if embedded else str(stream.error)))
    else:
        state = {"ok": "ok", "rejected": "REJECTED"}.get(stream.credentials, "ok" if stream.reachable else "DOWN")
        detail = f"{stream.target}: " + (
            f"GetApp in {stream.ms:g} ms" if stream.credentials == "ok" else str(stream.error)
        )
        out.append(("stream", state, detail))
    if status.outbox is not None:
        outbox = status.outbox
        out.append(
            (
                "outbox",
                "ok" if outbox.pending == 0 else "waiting",
                f"{outbox.pending} pending, oldest {_age(outbox.oldest_pending_age_s)}",
            )
        )
        out.append(("dead letters", "ok" if outbox.dead == 0 else "ACT", str(outbox.dead)))
    if status.reconcile is not None:
        rec = status.reconcile
        when = (
            f"{rec.last_finished_at:%Y-%m-%d %H:%M:%S} UTC ({_age(rec.age_s)} ago)" if rec.last_finished_at else "never"
        )
        out.append(("last reconcile", "-" if rec.last_finished_at is None else "ok", when))
        out.append(("drift", "ok" if not any(rec.drift.values()) else "found", f"last run: {_kinds(rec.drift)}"))
        out.append(
            (
                "webhook drift",
                "ok" if not any(rec.open_webhook_drift.values()) else "open",
                f"unresolved: {_kinds(rec.open_webhook_drift)}",
            )
        )
        seen = ", ".join(f"{w.worker_id} ({_age(w.age_s)} ago)" for w in status.workers) or "none"
        out.append(("workers", "ok" if status.workers_recent else "NONE", f"{status.workers_recent} recent; {seen}"))
    return out


def print_status(status: Status) -> None:
    """The table, then the problems in words (or that all is well)."""
    out = Console()
    out = out if out.is_terminal else Console(width=200)
    table = Table(title="onecrew-chat status")
    for column in ("part", "state", "detail"):
        table.add_column(column, overflow="fold")
    for part, state, detail in rows(status):
        style = "red" if state.isupper() and state != "OK" else None
        table.add_row(part, state, escape(detail), style=style)
    out.print(table)
    if status.ok:
        out.print("All well: nothing needs attention.")
        return
    out.print("Needs attention:")
    for problem in status.problems:
        out.print(f"  - {problem}", markup=False, highlight=False)
