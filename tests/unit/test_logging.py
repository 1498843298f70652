"""Logs never carry secrets: redacted keys, and no local variables in tracebacks."""

from __future__ import annotations

import structlog

from onecrew_chat.logging import configure_logging, get_logger


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
