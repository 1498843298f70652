"""ONECREW_LOG_FORMAT=json gives JSON lines only: structlog's, the standard library's, warnings' and uvicorn's."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings

import structlog

from onecrew_chat.logging import configure_logging, get_logger


def _json_lines(err: str) -> list[dict]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]  # fails on the first line that is not JSON


def test_json_format_routes_stdlib_warnings_and_uvicorn_through_structlog(capsys):
    configure_logging("json", "info")
    try:
        get_logger("t").warning("outbox.slow", pending=3)
        logging.getLogger("uvicorn.error").error("[Errno 98] error while attempting to bind on address")
        logging.getLogger("uvicorn.access").warning('127.0.0.1:1 - "GET /x HTTP/1.1" 500')
        logging.getLogger("some.library").warning("library says %s", "hello")
        warnings.warn("an old call", DeprecationWarning, stacklevel=1)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        events = _json_lines(capsys.readouterr().err)
    finally:
        logging.captureWarnings(False)
        structlog.reset_defaults()
    by_event = {entry["event"]: entry for entry in events}
    assert by_event["outbox.slow"]["pending"] == 3
    assert by_event["[Errno 98] error while attempting to bind on address"]["logger"] == "uvicorn.error"
    assert by_event["library says hello"]["level"] == "warning"
    assert any("an old call" in entry["event"] for entry in events)
    assert "ValueError: boom" in by_event["Exception in ASGI application"]["exception"]
    assert all("timestamp" in entry for entry in events)


def test_log_format_is_case_insensitive_and_a_bad_level_is_refused(tmp_path):
    from onecrew_chat.config import Settings

    assert Settings(log_format="JSON").log_format == "json"
    assert Settings(log_level="WARNING").log_level == "warning"
    script = "from onecrew_chat.cli.main import main; main()"
    env = {"ONECREW_LOG_LEVEL": "verbose", "ONECREW_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script, "dev-token", "dda3aaa6-d123-4e57-aeef-f0661ec61352"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: ONECREW_LOG_LEVEL: Input should be 'debug', 'info', 'warning', 'error' or 'critical'"
    ]
