"""What `onecrew-chat` loads before it parses its arguments: typer, the standard library and the command signatures.

Every command, `--help` and `--version` included, waits for these imports, and so does each process a test starts.
The heavy parts (settings, the database and models, the FastAPI app, uvicorn, the Stream SDK, the emulator, alembic,
rich) load inside the command that uses them (cli/main.py says why). A fresh interpreter is the only honest place to
look: this test process has imported most of them already.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

LOADED_WHEN_A_COMMAND_RUNS = (
    "alembic",
    "fastapi",
    "getstream",
    "httpx",
    "jwt",
    "onecrew_chat.api",
    "onecrew_chat.config",
    "onecrew_chat.db",
    "onecrew_chat.models",
    "onecrew_chat.runtime",
    "pydantic",
    "pydantic_settings",
    "rich.progress",  # rich itself draws typer's --help
    "sqlalchemy",
    "starlette",
    "stream_chat",
    "stream_emulator.app",
    "stream_emulator.emulator",
    "uvicorn",
)


def _modules_loaded_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import onecrew_chat.cli.main",
        # --help walks every command group's signatures: it must not load more than the import did.
        "import contextlib, io\nfrom onecrew_chat.cli.main import app\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n    app(['--help'])",
    ],
    ids=["import", "help"],
)
def test_the_command_line_starts_without_the_heavy_parts(code: str) -> None:
    loaded = _modules_loaded_by(f"{code}\nimport sys\nprint('\\n'.join(sys.modules))")

    assert "onecrew_chat.cli.main" in loaded  # the probe ran
    early = sorted(m for m in LOADED_WHEN_A_COMMAND_RUNS if m in loaded)
    assert early == [], f"imported before any command runs: {early}"
