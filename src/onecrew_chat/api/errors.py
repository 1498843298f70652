"""Rendering every failure as {success: false, error, code}: domain errors, bad input and the unexpected."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from onecrew_chat.errors import AppError
from onecrew_chat.logging import get_logger

log = get_logger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "invalid_token", 400: "bad_request"}


def error_body(message: str, code: str) -> dict:
    """The one error shape the app's API client reads (`error` must be a string)."""
    return {"success": False, "error": message, "code": code}


def _field_path(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


def describe_validation_errors(errors: list[dict]) -> tuple[int, str, str]:
    """Turn pydantic's error list into a status, a code and one readable sentence."""
    if any(err.get("type") == "json_invalid" for err in errors):
        return 400, "invalid_json", "Request body is not valid JSON"
    messages = []
    for err in errors[:5]:
        path = _field_path(tuple(err.get("loc", ())))
        msg = str(err.get("msg", "is invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err.get("type") == "missing":
            msg = "is required"
        elif err.get("type") == "model_attributes_type" or err.get("type") == "dict_type":
            msg = "must be a JSON object"
        messages.append(f"{path} {msg}" if path else msg)
    return 422, "validation_error", "; ".join(messages) or "Request is invalid"


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
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "No such endpoint"
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(error_body(message, code), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request.unhandled_error", path=request.url.path, exc_info=exc)
        return JSONResponse(error_body("Internal server error", "internal_error"), status_code=500)
