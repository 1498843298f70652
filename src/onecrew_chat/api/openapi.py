"""What the OpenAPI document says beyond what FastAPI infers: error answers, raw JSON bodies, tags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel, WithJsonSchema

from onecrew_chat.accounts.demo import SAT_EDUCATION_ID
from onecrew_chat.api.examples import add_examples
from onecrew_chat.api.schemas import ErrorEnvelope

# What each error status means in this API.
_STATUS_WORDS = {
    400: "Bad parameters or a body that is not JSON; `error` says which and why",
    401: "Missing, malformed, expired or wrongly signed credentials",
    403: "Not allowed to act as that company (`not_company_member`)",
    404: "Not found, or not visible to the caller",
    408: "Stream did not finish the channel within the deadline (`provisioning_timeout`); send the same request again",
    409: "The same Idempotency-Key is still being processed; safe to retry",
    413: "Request body larger than the limit",
    415: "A Content-Encoding other than gzip",
    422: "The body is JSON but a field is invalid; `error` names the field",
    502: "Stream refused the request (`stream_error`)",
    503: "A dependency (database or Stream) is not answering",
}

TAGS = [
    {"name": "token", "description": "Stream user tokens for the user or a company they own or administer."},
    {"name": "conversations", "description": "Create, list, open and prepare conversations; unread counts."},
    {"name": "presence", "description": "The app's foreground heartbeat."},
    {"name": "webhooks", "description": "Stream's signed event deliveries."},
    {"name": "internal", "description": "The directory the main OneCrew backend keeps current (service token)."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
]


# A marker in a parameter's documented schema: install_openapi turns it into `required: true`. The route keeps
# the parameter optional, so that a missing one gets the route's own 400 words rather than FastAPI's 422.
REQUIRED = "x-onecrew-required"


def empty_or(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema that also admits the empty value (`?page=`), which means the default."""
    return {"anyOf": [schema, {"type": "string", "maxLength": 0}]}


# Query parameters read as text and checked by access.acting_identity_for_profile (its 400s say what is wrong);
# WithJsonSchema documents the values it accepts without letting FastAPI answer first with other words.
ProfileTypeQuery = Annotated[
    str | None,
    WithJsonSchema(empty_or({"type": "string", "enum": ["user", "company"]})),
    Query(description="Act as the user (the default) or as the company `company_id`"),
]
# Not `format: uuid`: a company_id is only read (and then must be a uuid) when acting as a company.
COMPANY_ID_SCHEMA = {"type": "string", "examples": [SAT_EDUCATION_ID]}
CompanyIdQuery = Annotated[
    str | None,
    WithJsonSchema(COMPANY_ID_SCHEMA),
    Query(description="The uuid of a company the caller owns or administers; acting as it unless profile_type is user"),
]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting these error statuses with the error envelope."""
    return {status: {"model": ErrorEnvelope, "description": _STATUS_WORDS[status]} for status in statuses}


def inline_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` references inlined (OpenAPI cannot resolve `#/$defs/...`)."""
    definitions = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(dict(definitions[ref.rsplit("/", 1)[1]]))
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


def json_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra=` for a route that reads its JSON body itself (to choose its own error words)."""
    schema = inline_definitions(model.model_json_schema())
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def operation_id(route: APIRoute) -> str:
    """Operation ids are the route functions' names (`get_conversations`, `put_user`, ...)."""
    return route.name


def install_openapi(app: FastAPI) -> None:
    """Serve a document without FastAPI's default 422 shape (this app's errors are all the error envelope)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    for parameter in operation.get("parameters", []):
                        if parameter.get("schema", {}).pop(REQUIRED, False):
                            parameter["required"] = True
                    # FastAPI adds a 422 to every route with parameters; here only routes that list it answer one
                    # (their parameters are plain text), and the fuzz tests catch an undocumented status.
                    answer = operation.get("responses", {}).get("422")
                    if answer and "HTTPValidationError" in str(answer):
                        del operation["responses"]["422"]
            schemas = document.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            add_examples(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to replace the document
