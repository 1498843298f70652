"""structlog set-up: console output in development, JSON in production, secrets never rendered."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger, Processor

_REDACTED_KEYS = frozenset({"token", "secret", "api_secret", "authorization", "password", "service_token"})


def _redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in _REDACTED_KEYS:
            event_dict[key] = "***"
    return event_dict


# Loggers of libraries that set up handlers of their own; their records go to the root handler instead.
_ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "py.warnings")


def configure_logging(log_format: str = "console", level: str = "info") -> None:
    """Configure structlog and the stdlib root logger once per process.

    Records of the standard library's logging (uvicorn's errors and access lines, `warnings`, libraries) go
    through structlog's ProcessorFormatter with the same renderer, so `json` output is JSON lines only.
    """
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer = (
        structlog.processors.JSONRenderer()
        if log_format.lower() == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # Local variables of a traceback can hold bearer tokens and secrets: never render them.
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.processors.format_exc_info],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    # Libraries (httpx, aiosqlite, asyncio, ...) speak from WARNING on: their INFO/DEBUG lines are noise here.
    root.setLevel(max(numeric, logging.WARNING))
    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers = []
        routed.propagate = True
    logging.captureWarnings(False)  # re-arm: a second call is a no-op if something restored showwarning since
    logging.captureWarnings(True)


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A structlog logger; event names are stable dotted strings, details go in fields."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger
