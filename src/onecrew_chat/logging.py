"""structlog set-up: console output in development, JSON in production, secrets never rendered."""

from __future__ import annotations

import logging
import sys

import structlog

_REDACTED_KEYS = frozenset({"token", "secret", "api_secret", "authorization", "password", "service_token"})


def _redact(_logger, _name, event_dict):
    for key in list(event_dict):
        if key.lower() in _REDACTED_KEYS:
            event_dict[key] = "***"
    return event_dict


def configure_logging(log_format: str = "console", level: str = "info") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # Local variables of a traceback can hold bearer tokens and secrets: never render them.
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)


def get_logger(name: str | None = None):
    """A structlog logger; event names are stable dotted strings, details go in fields."""
    return structlog.get_logger(name)
