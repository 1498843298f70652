"""Rendering every failure as {success: false, error, code}: domain errors, bad input and the unexpected."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from onecrew_chat.errors import AppError
from onecrew_chat.logging import get_logger

log = get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "invalid_token",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# FastAPI's own words when a JSON body cannot be decoded (e.g. it is not UTF-8).
_FASTAPI_BODY_ERROR = "There was an error parsing the body"


def error_body(message: str, code: str) -> dict[str, Any]:
    """The one error shape the app's API client reads (`error` must be a string)."""
    return {"success": False, "error": message, "code": code}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


def _describe_one(err: Mapping[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    path = _field_path(loc)
    kind = err.get("type")
    msg = str(err.get("msg", "is invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "missing":
        if not path and loc[:1] == ("body",):
            return "Request body is required: send a JSON object"
        msg = "is required"
    elif kind in ("model_attributes_type", "dict_type"):
        if not path:
            # FastAPI hands a body over undecoded when its Content-Type is not JSON.
            hint = " with Content-Type: application/json" if isinstance(err.get("input"), bytes) else ""
            return f"Request body must be a JSON object{hint}"
        msg = "must be a JSON object"
    return f"{path} {msg}" if path else msg


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[int, str, str]:
    """Turn pydantic's error list into a status, a code and one readable sentence."""
    if any(err.get("type") == "json_invalid" for err in errors):
        return 400, "invalid_json", "Request body is not valid JSON"
    messages = [_describe_one(err) for err in errors[:5]]
    return 422, "validation_error", "; ".join(messages) or "Request is invalid"


def _shown_path(request: Request) -> str:
    path = request.url.path
    return path if len(path) <= 200 else path[:200] + "..."


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette's Allow names only the first route's)."""
    routes = request.app.routes
    allowed = [
        method
        for method in _METHOD_ORDER
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


def _http_error_message(request: Request, exc: StarletteHTTPException) -> tuple[str, str]:
    """Words and a code for Starlette's own errors (unknown path, wrong method, undecodable body)."""
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404 and message == "Not Found":
        message = f"No such endpoint: {request.method} {_shown_path(request)}"
    elif exc.status_code == 405:
        allowed = allowed_methods(request) or (exc.headers or {}).get("Allow", "")
        message = f"Method {request.method} is not allowed on {_shown_path(request)}" + (
            f"; use {allowed}" if allowed else ""
        )
    elif exc.status_code == 400 and message == _FASTAPI_BODY_ERROR:
        message, code = "Request body is not valid JSON (it must be UTF-8 encoded JSON)", "invalid_json"
    return message, code


# SQLSTATE classes and codes a retry can fix: connection exceptions, insufficient resources, operator intervention
# (query canceled by statement_timeout, admin shutdown), serialization failure, deadlock, lock not available, a
# read-only transaction (connected to a standby during a failover). A connection the database refuses to open,
# whatever its SQLSTATE, arrives marked `connection_invalidated` (db.mark_connect_failures).
_RETRYABLE_CLASSES = ("08", "53", "57")
_RETRYABLE_CODES = ("40001", "40P01", "55P03", "25006")


def is_retryable(exc: DBAPIError) -> bool:
    """True for database errors that the same request, sent again, may well not meet."""
    if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    cause = getattr(orig, "__cause__", None)
    state = state or getattr(cause, "sqlstate", None)
    if not state:
        return False
    return state in _RETRYABLE_CODES or state[:2] in _RETRYABLE_CLASSES


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers so no client-caused failure is a 500 and every body is JSON."""

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.code), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = describe_validation_errors(list(exc.errors()))
        return JSONResponse(error_body(message, code), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message, code = _http_error_message(request, exc)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return JSONResponse(error_body(message, code), status_code=exc.status_code, headers=headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    @app.exception_handler(ConnectionError)  # asyncpg's refused or reset connection is not wrapped by SQLAlchemy
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Locked SQLite, a lost PostgreSQL connection, an exhausted pool: the client did nothing wrong
        # and every write path is idempotent, so the same request may simply be sent again.
        log.error("request.database_unavailable", path=request.url.path, error=type(exc).__name__)
        return JSONResponse(
            error_body("The database is busy or unreachable; please retry (retrying is safe)", "database_unavailable"),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # Deadlocks, serialization failures, lock and statement timeouts, too many connections: a retry can fix
        # them. Anything else the database refuses is a defect of ours (500).
        if is_retryable(exc):
            return await _database_unavailable(request, exc)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request.unhandled_error", path=request.url.path, exc_info=exc)
        return JSONResponse(error_body("Internal server error", "internal_error"), status_code=500)
