"""Logs never carry secrets: redacted keys, and no local variables in tracebacks."""

from __future__ import annotations

import io
import logging
import sys

import structlog

from onecrew_chat.logging import configure_logging, get_logger
from tests.support import logging_kept


def test_secret_fields_are_redacted(capsys):
    configure_logging("json", "info")
    get_logger("t").info("stream.configured", api_secret="s3cr3t-value", token="eyJsecret", channel_id="c1")
    err = capsys.readouterr().err
    assert "s3cr3t-value" not in err and "eyJsecret" not in err
    assert '"channel_id": "c1"' in err


def test_console_tracebacks_do_not_show_local_variables(capsys):
    configure_logging("console", "info")

    def handler(authorization: str) -> None:
        bearer_token_in_a_local = authorization
        raise RuntimeError("boom " + str(len(bearer_token_in_a_local)))

    secret = "-".join(("very", "secret", "token"))  # built at run time: only a rendered local could show it
    try:
        handler(f"Bearer {secret}")
    except RuntimeError as exc:
        get_logger("t").error("request.unhandled_error", exc_info=exc)
    err = capsys.readouterr().err
    assert "RuntimeError" in err
    assert "very-secret-token" not in err
    structlog.reset_defaults()


def test_logging_configured_onto_a_stream_that_closes_is_put_back_for_later_tests(monkeypatch):
    """What the suite relies on (tests/conftest.py wraps every test in logging_kept): a test's captured stderr is
    closed after it, and a later test must not log into it."""
    captured = io.StringIO()
    with logging_kept():
        monkeypatch.setattr(sys, "stderr", captured)
        configure_logging("json", "info")
        get_logger("t").info("logged.inside")
        logging.getLogger("some.library").warning("stdlib inside")
        assert "logged.inside" in captured.getvalue() and "stdlib inside" in captured.getvalue()
    captured.close()
    get_logger("t").warning("logged.after")  # ValueError (I/O operation on closed file) if still bound to it
    assert all(getattr(handler, "stream", None) is not captured for handler in logging.getLogger().handlers)
