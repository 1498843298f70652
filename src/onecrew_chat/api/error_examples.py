"""The example error answers in the OpenAPI document: one per status, in the service's real words and codes.

Most operations answer a status with the words of ERRORS; ERROR_OVERRIDES holds those that answer with others.
tests/api/test_error_examples.py provokes each of them and checks the service answers exactly so.
"""

from __future__ import annotations

from typing import Any

from onecrew_chat.accounts.demo import AMR_ID, SAT_EDUCATION_ID
from onecrew_chat.identity import ConversationType, Identity, pair_channel_id

# The demo pair the examples open: Amr with Sat Education.
PAIR_CHANNEL_ID = pair_channel_id(
    ConversationType.USER_COMPANY, Identity.user(AMR_ID), Identity.company(SAT_EDUCATION_ID)
)


def _error(error: str, code: str) -> dict[str, Any]:
    return {"success": False, "error": error, "code": code}


# One error answer per status, in the words and codes the service really answers with (most operations).
ERRORS: dict[int, dict[str, Any]] = {
    400: _error("profile_type is required and must be 'user' or 'company'", "invalid_profile_type"),
    401: _error("Invalid or expired token", "invalid_token"),
    403: _error("User must be a member of this company", "not_company_member"),
    404: _error("Conversation not found", "conversation_not_found"),
    408: _error(
        f"Request timeout: the chat channel {PAIR_CHANNEL_ID} is still being set up; send the same request again "
        "to open it",
        "provisioning_timeout",
    ),
    409: _error(
        "A request with this Idempotency-Key is still being processed; retry shortly", "idempotency_key_in_use"
    ),
    413: _error("Request body is too large (2,000,000 bytes); at most 1,048,576 bytes are accepted", "body_too_large"),
    415: _error("Webhook Content-Encoding 'br' is not supported; Stream sends gzip or none", "unsupported_encoding"),
    422: _error("participant_ids must name at least one other participant", "validation_error"),
    502: _error("Stream refused the request: 400 GetOrCreateChannel failed", "stream_error"),
    503: _error("The database is busy or unreachable; please retry (retrying is safe)", "database_unavailable"),
}
_NOT_JSON = _error("Request body is not valid JSON", "invalid_json")
_SERVICE_TOKEN = _error("Invalid service token", "invalid_service_token")
_INTERNAL = {400: _NOT_JSON, 401: _SERVICE_TOKEN}
_COMPANY_NOT_FOUND = _error(f"Company not found: {SAT_EDUCATION_ID}", "company_not_found")
_BAD_CONVERSATION_ID = _error(
    "Invalid conversation id: use the channel id, 1 to 128 letters, digits, '_' or '-'", "invalid_conversation_id"
)
_BAD_USER_ID = _error("user id must be a uuid, got 'not-a-uuid'", "invalid_id")
_BAD_COMPANY_ID = _error("company id must be a uuid, got 'not-a-uuid'", "invalid_id")
_NO_ENDPOINT = _error("No such endpoint: DELETE /api/internal/users/not-a-route/x", "not_found")
_BATCH_RACE = _error("A company or user was deleted while this batch was written; send it again", "conflict")

# Where an operation answers a status with other words than ERRORS says.
ERROR_OVERRIDES: dict[str, dict[int, dict[str, Any]]] = {
    "readyz": {
        503: _error("database not reachable: no answer within 1 s", "not_ready"),
    },
    "post_token": {400: _error("company_id is required when profile_type is 'company'", "missing_company_id")},
    "stream_webhook": {
        400: _error("Webhook body must be a JSON object with a type", "invalid_event"),
        401: _error("Invalid webhook signature", "invalid_signature"),
    },
    "post_conversation": {
        400: _error("Request body is not valid JSON", "invalid_json"),
        404: _error(f"Other participant not found: {AMR_ID}", "participant_not_found"),
        422: _error(
            "user_user conversations are between two users; leave out company_id, or use user_company or "
            "company_company to write as a company",
            "conversation_type_mismatch",
        ),
    },
    "get_conversation": {400: _BAD_CONVERSATION_ID},
    "prepare_conversation": {
        400: _BAD_CONVERSATION_ID,
        502: _error("Stream refused to prepare the channel: 400 GetOrCreateChannel failed", "stream_error"),
    },
    "put_user": {**_INTERNAL, 404: _error("user was deleted while being updated", "not_found"), 422: _BAD_USER_ID},
    "delete_user": {**_INTERNAL, 404: _NO_ENDPOINT, 422: _BAD_USER_ID},
    "put_company": {
        **_INTERNAL,
        404: _error("company was deleted while being updated", "not_found"),
        422: _BAD_COMPANY_ID,
    },
    "delete_company": {**_INTERNAL, 404: _NO_ENDPOINT, 422: _BAD_COMPANY_ID},
    "put_member": {**_INTERNAL, 404: _COMPANY_NOT_FOUND, 422: _BAD_COMPANY_ID},
    "delete_member": {**_INTERNAL, 404: _NO_ENDPOINT, 422: _BAD_COMPANY_ID},
    "service_status": {401: _SERVICE_TOKEN},
    "put_users": {**_INTERNAL, 409: _BATCH_RACE},
    "put_companies": {**_INTERNAL, 409: _BATCH_RACE},
    "put_members": {**_INTERNAL, 409: _BATCH_RACE},
    "ensure_conversation": {**_INTERNAL, 404: _COMPANY_NOT_FOUND},
    "post_server_message": {
        **_INTERNAL,
        409: _error(
            "Message id course-registration-demo-1 was already used for another message; choose a new id",
            "message_id_reused",
        ),
    },
}


def error_example(operation_id: str, status: int) -> dict[str, Any]:
    """The example error answer of one operation's status."""
    return ERROR_OVERRIDES.get(operation_id, {}).get(status) or ERRORS[status]
