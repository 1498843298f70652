"""`onecrew-chat import users|companies|members|channels`: take over the old backend's directory and channels.

The directory commands (a FILE or `--from-sql URL`) and their closing summary are here; the run with its progress
bar is cli/import_runs.py, and `import channels` runs cli/import_channels.py. Both are loaded when a command runs,
not when the command line starts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from onecrew_chat.accounts.directory_import import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_REJECTIONS
from onecrew_chat.cli.settings import JsonReport, RetrySkipped, fail, load_settings, require_migrated, require_stream

if TYPE_CHECKING:
    from onecrew_chat.accounts.directory_import.runner import Summary

app = typer.Typer(
    help="Take over from the old backend: the directory (files or OneCrew's own database) and its Stream channels.",
    no_args_is_help=True,
)

FileArg = Annotated[
    str | None, typer.Argument(help="A .jsonl or .csv file (.gz read transparently); `-` reads standard input.")
]
FromSql = Annotated[
    str | None,
    typer.Option("--from-sql", metavar="URL", help="Read OneCrew's own database instead (ONECREW_IMPORT_<KIND>_SQL)."),
]
Format = Annotated[str | None, typer.Option("--format", help="jsonl or csv (default: from the suffix).")]
Batch = Annotated[int, typer.Option("--batch", min=1, max=10_000, help="Rows per transaction.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON (no progress bar).")]
MaxLine = Annotated[
    int,
    typer.Option(
        "--max-line-bytes",
        min=1024,
        help="A longer line (or CSV record) is rejected with its line number, never held in memory (1 MiB).",
    ),
]
MaxRejections = Annotated[
    int,
    typer.Option(
        "--max-rejections", min=0, help="Rejected (and renamed) rows listed in the summary (all are counted)."
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Read and validate every row and report; write nothing.")]

# Exit statuses (docs/operations.md, "Importing the directory"): what a script needs to tell apart.
EXIT_IMPORTED = 0  # every row imported
EXIT_REJECTED = 1  # some rows rejected, or the source stopped part-way (what was read is committed)
EXIT_UNREADABLE = 2  # nothing could be read: missing file, not gzip, not UTF-8, no such column, bad arguments
EXIT_NOTHING_TO_IMPORT = 3  # read to its end, no rows: an empty file, a CSV with only its header, no SELECT rows
EXIT_INTERRUPTED = 130


def print_summary(summary: Summary, out: Callable[[str], None] = typer.echo) -> None:
    """The closing summary: counts, queued Stream syncs, and the first rejected rows with their reasons."""
    c = summary.counts
    if summary.empty:
        out(
            f"Nothing to import: {summary.source} has no {summary.kind} "
            "(an empty file, a CSV with only its header, or a SELECT without rows)."
        )
        return
    rate = f", {summary.read / summary.seconds:,.0f} rows/s" if summary.seconds > 0 and summary.read else ""
    verb, would = ("Dry run of the import of", "would be ") if summary.dry_run else ("Imported", "")
    out(
        f"{verb} {summary.kind} from {summary.source}: {c['created']:,} {would}created, {c['updated']:,} {would}updated, "
        f"{c['unchanged']:,} unchanged, {c['rejected']:,} rejected "
        f"({summary.read:,} rows in {summary.seconds:.1f} s{rate})."
    )
    if summary.sync_queued and summary.dry_run:
        out(f"Would queue {summary.sync_queued:,} Stream profile updates (identity.sync).")
    elif summary.sync_queued:
        out(f"Queued {summary.sync_queued:,} Stream profile updates (identity.sync) for identities Stream already has.")
    if not summary.changed and summary.read > c["rejected"]:
        out("Nothing changed: every valid row was already in the directory as given.")
    if summary.rejections:
        word = summary.position_word
        first = f"the first {len(summary.rejections):,} of {c['rejected']:,}; " if summary.rejections_omitted else ""
        out(f"Rejected {word}s ({first}fix them and run the command again):")
        for position, error in summary.rejections:
            out(f"  {summary.where(position)}: {error}")
        if summary.rejections_omitted:
            out(f"  ... and {summary.rejections_omitted:,} more rejected {word}s, not listed (--max-rejections).")
    elif c["rejected"]:
        out(f"Rejected {c['rejected']:,} {summary.position_word}s, not listed (--max-rejections 0).")
    if summary.renamed_count:
        out(
            f"Imported under a fallback or shortened name ({summary.renamed_count:,}; "
            "fix them in OneCrew, then import again):"
        )
        for position, note in summary.renamed:
            out(f"  {summary.position_word} {position}: {note}")
        if summary.renamed_omitted:
            out(f"  ... and {summary.renamed_omitted:,} more, not listed (--max-rejections).")
    if summary.dry_run:
        out("Dry run: nothing was written.")
    if summary.stopped:
        out(
            f"Stopped before the end: {summary.stopped}. What was read before is committed; "
            "run the command again to continue (rows already imported count as unchanged)."
        )


def exit_status(summary: Summary) -> int:
    """0 imported, 1 rows rejected or stopped part-way, 3 nothing to import (2 and 130 never reach a summary)."""
    if summary.empty:
        return EXIT_NOTHING_TO_IMPORT
    return EXIT_IMPORTED if summary.ok else EXIT_REJECTED


def _command(kind_name: str) -> Callable[..., None]:
    def command(
        file: FileArg = None,
        from_sql: FromSql = None,
        fmt: Format = None,
        batch: Batch = 1000,
        as_json: AsJson = False,
        max_line_bytes: MaxLine = DEFAULT_MAX_LINE_BYTES,
        max_rejections: MaxRejections = DEFAULT_MAX_REJECTIONS,
        dry_run: DryRun = False,
    ) -> None:
        from onecrew_chat.accounts.directory_import import SourceError
        from onecrew_chat.accounts.directory_import.files import FORMATS
        from onecrew_chat.cli.import_runs import run_directory_import

        if (file is None) == (from_sql is None):
            fail("give either a FILE (or - for standard input) or --from-sql URL", code=EXIT_UNREADABLE)
        if fmt is not None and fmt not in FORMATS:
            fail(f"--format must be jsonl or csv, got {fmt!r}", code=EXIT_UNREADABLE)
        settings = load_settings()
        require_migrated(settings)
        try:
            run = run_directory_import(
                settings,
                kind_name,
                file,
                from_sql,
                fmt,
                batch,
                show_progress=not as_json,
                max_line_bytes=max_line_bytes,
                max_rejections=max_rejections,
                dry_run=dry_run,
            )
            summary = asyncio.run(run)
        except SourceError as exc:
            fail(str(exc), code=EXIT_UNREADABLE)
        except KeyboardInterrupt:
            fail(
                "interrupted; the batches already committed stay. Run the same command again to continue.",
                code=EXIT_INTERRUPTED,
            )
        if as_json:
            typer.echo(json.dumps(summary.as_dict()))
        else:
            print_summary(summary)
        raise typer.Exit(exit_status(summary))

    command.__doc__ = (
        f"Import {kind_name} ({_HELP_COLUMNS[kind_name]}) from a JSONL/CSV file or OneCrew's database; "
        "idempotent, resumable, bad rows listed by line."
    )
    return command


# For --help only (kept out of the import's modules so the command line starts without loading them).
_HELP_COLUMNS = {
    "users": "id, name, image_url, category",
    "companies": "id, name, logo_url, subcategory",
    "members": "company_id, user_id, role, invitation_status",
}


@app.command("channels")
def import_channels(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read Stream and report; write nothing, send nothing.")
    ] = False,
    as_json: JsonReport = False,
    retry_skipped: RetrySkipped = False,
) -> None:
    """Adopt every messaging channel in Stream: pairs keep their channel id, groups their name; resumable."""
    from onecrew_chat.cli import import_channels as adoption
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    require_stream(settings)
    require_migrated(settings)
    try:
        report = asyncio.run(adoption.run_import_channels(settings, dry_run=dry_run, retry_skipped=retry_skipped))
    except StreamError as exc:
        fail(f"stopped: {exc}. What was read and adopted is recorded; run the command again to continue.")
    adoption.print_report(report, as_json=as_json)


# Listed after `channels` in `onecrew-chat import --help`.
for _kind_name in ("users", "companies", "members"):
    app.command(_kind_name)(_command(_kind_name))
