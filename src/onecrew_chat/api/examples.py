"""Examples in the OpenAPI document that work against the demo data (onecrew_chat.accounts.demo), as served by `make run`.

Authorize in /docs with a token for Mona Samir, who owns Sat Education (`make dev-token USER=<her id>`), and the
service token for /api/internal. Every operation's parameters and body are then filled in with ids that exist:
Sat Education (acting as the company) talks with Amr, the user from the original bug report.
tests/api/test_openapi_examples.py runs every operation with exactly these values and validates each answer against
the documented schema.
"""

from __future__ import annotations

from typing import Any

from onecrew_chat.accounts.demo import AMR_ID, COMPANY_OWNER_ID, SAT_EDUCATION_ID
from onecrew_chat.api.error_examples import PAIR_CHANNEL_ID, error_example
from onecrew_chat.identity import CHANNEL_TYPE, Identity, cid

# Who the examples act as: the owner of Sat Education (a user who may also act as the company).
EXAMPLE_CALLER_ID = COMPANY_OWNER_ID
AMR = Identity.user(AMR_ID)
SAT = Identity.company(SAT_EDUCATION_ID)
WHEN = "2026-01-05T09:30:00.000Z"

# Parameter values by name; OPERATIONS overrides them per operation where a name means something else.
PARAMETERS: dict[str, Any] = {
    "profile_type": "company",
    "company_id": SAT_EDUCATION_ID,
    "X-Company-Id": SAT_EDUCATION_ID,
    "conversation_id": PAIR_CHANNEL_ID,
    "page": "1",
    "limit": "20",
    "search": "Amr",
    "Idempotency-Key": "0b9f6c1e-5d2a-4f8e-9c3b-7a1d2e4f6a8b",
    "X-Webhook-Id": "0d2c7e4a-demo-message-new",
}

_WEBHOOK_EVENT = {
    "type": "message.new",
    "cid": cid(PAIR_CHANNEL_ID),
    "channel_type": CHANNEL_TYPE,
    "channel_id": PAIR_CHANNEL_ID,
    "created_at": "2026-01-05T10:00:00.000000Z",
    "message": {
        "id": "demo-message-1",
        "text": "Hello from Amr",
        "created_at": "2026-01-05T10:00:00.000000Z",
        "user": {"id": AMR.stream_id},
    },
    "user": {"id": AMR.stream_id},
}

# Per operation id: parameter overrides and the request body.
OPERATIONS: dict[str, dict[str, Any]] = {
    "post_conversation": {
        "body": {"conversation_type": "user_company", "participant_ids": [AMR_ID], "company_id": SAT_EDUCATION_ID},
    },
    "post_token": {"body": {"profile_type": "company", "company_id": SAT_EDUCATION_ID}},
    "stream_webhook": {"body": _WEBHOOK_EVENT},
    "put_user": {"parameters": {"user_id": AMR_ID}, "body": {"name": "Amr", "image_url": None, "category": "talent"}},
    "delete_user": {"parameters": {"user_id": AMR_ID}},
    "put_company": {"body": {"name": "Sat Education", "logo_url": None, "subcategory": "academy"}},
    "put_member": {
        "parameters": {"user_id": EXAMPLE_CALLER_ID},
        "body": {"role": "owner", "invitation_status": "accepted"},
    },
    "delete_member": {"parameters": {"user_id": EXAMPLE_CALLER_ID}},
    "ensure_conversation": {
        "body": {
            "conversation_type": "user_company",
            "participant_ids": [AMR_ID],
            "acting": {"type": "company", "id": SAT_EDUCATION_ID},
        },
    },
    "post_server_message": {
        "parameters": {"conversation_id": PAIR_CHANNEL_ID},
        "body": {
            "id": "course-registration-demo-1",
            "sender": {"type": "user", "id": AMR_ID},
            "text": "Amr registered for Acting for Camera",
            "custom_data": {
                "course_id": "c0ffee00-0000-4000-8000-000000000001",
                "course_title": "Acting for Camera",
                "user_id": AMR_ID,
                "user_name": "Amr",
                "registered_at": "2026-01-05T09:30:00Z",
            },
        },
    },
    "put_users": {"body": [{"id": AMR_ID, "name": "Amr", "image_url": None, "category": "talent"}]},
    "put_companies": {
        "body": [{"id": SAT_EDUCATION_ID, "name": "Sat Education", "logo_url": None, "subcategory": "academy"}]
    },
    "put_members": {
        "body": [
            {
                "company_id": SAT_EDUCATION_ID,
                "user_id": EXAMPLE_CALLER_ID,
                "role": "owner",
                "invitation_status": "accepted",
            }
        ]
    },
}


def _participant(identity: Identity, number: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"7c0e5a1b-3d2f-4e6a-9b8c-0d1e2f3a4b5{number}",
        "conversation_id": PAIR_CHANNEL_ID,
        "participant_type": identity.kind.value,
        "participant_id": identity.entity_id,
        "joined_at": WHEN,
        "last_read_at": None,
    }
    if identity == AMR:
        body["user"] = {"id": AMR_ID, "name": "Amr", "image_url": None, "category": "talent"}
    else:
        body["company"] = {"id": SAT_EDUCATION_ID, "name": "Sat Education", "logo_url": None, "subcategory": "academy"}
    return body


CONVERSATION = {
    "id": PAIR_CHANNEL_ID,
    "conversation_id": PAIR_CHANNEL_ID,
    "conversation_type": "user_company",
    "name": None,
    "created_at": WHEN,
    "updated_at": WHEN,
    "last_message_at": None,
    "last_message_preview": None,
    "participants": [_participant(SAT, 1), _participant(AMR, 2)],
    "chat": {
        "channel_type": CHANNEL_TYPE,
        "channel_id": PAIR_CHANNEL_ID,
        "cid": cid(PAIR_CHANNEL_ID),
        "status": "ready",
        "members": [SAT.stream_id, AMR.stream_id],
    },
}
_STAMPS = {"created_at": "2026-01-05T09:00:00+00:00", "updated_at": "2026-01-05T09:30:00+00:00"}
_TOKEN = {
    "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoib25lY3Jld19jb21wYW55In0.c2lnbmF0dXJl",
    "user_id": SAT.stream_id,
    "api_key": "dev-3xAmPl3kEy",
    "profile_type": "company",
    "company_id": SAT_EDUCATION_ID,
}

# Per operation id: the `data` of its 200 answer.
ANSWERS: dict[str, Any] = {
    "post_conversation": CONVERSATION,
    "get_conversation": CONVERSATION,
    "get_conversations": {"data": [CONVERSATION], "pagination": {"page": 1, "limit": 20, "total": 1, "totalPages": 1}},
    "get_unread_count": {"unread_count": 1, "profile_type": "company", "profile_id": SAT_EDUCATION_ID, "cached": False},
    "prepare_conversation": {"id": PAIR_CHANNEL_ID, "chat_status": "ready", "members": [SAT.stream_id, AMR.stream_id]},
    "post_token": _TOKEN,
    "get_token": _TOKEN,
    "heartbeat": {"last_seen_at": WHEN},
    "stream_webhook": {
        "webhook_id": "0d2c7e4a-demo-message-new",
        "type": "message.new",
        "status": "applied",
        "reason": None,
    },
    "put_user": {
        "id": AMR_ID,
        "name": "Amr",
        "image_url": None,
        "category": "talent",
        "kind": "user",
        **_STAMPS,
        "created": False,
    },
    "delete_user": {"id": AMR_ID, "deleted": True},
    "put_company": {
        "id": SAT_EDUCATION_ID,
        "name": "Sat Education",
        "logo_url": None,
        "subcategory": "academy",
        "kind": "company",
        **_STAMPS,
        "created": False,
    },
    "delete_company": {"id": SAT_EDUCATION_ID, "deleted": True},
    "put_member": {
        "company_id": SAT_EDUCATION_ID,
        "user_id": EXAMPLE_CALLER_ID,
        "role": "owner",
        "invitation_status": "accepted",
        **_STAMPS,
        "created": False,
    },
    "delete_member": {"company_id": SAT_EDUCATION_ID, "user_id": EXAMPLE_CALLER_ID, "deleted": True},
    "healthz": {"status": "ok", "version": "0.1.0"},
    "ensure_conversation": CONVERSATION,
    "post_server_message": {
        "id": "course-registration-demo-1",
        "conversation_id": PAIR_CHANNEL_ID,
        "sender": AMR.stream_id,
        "status": "sent",
    },
    "put_users": {
        "created": 0,
        "updated": 0,
        "unchanged": 1,
        "rejected": 0,
        "results": [{"index": 0, "outcome": "unchanged", "error": None, "id": AMR_ID, "identity_sync_queued": False}],
    },
    "put_companies": {
        "created": 0,
        "updated": 0,
        "unchanged": 1,
        "rejected": 0,
        "results": [
            {"index": 0, "outcome": "unchanged", "error": None, "id": SAT_EDUCATION_ID, "identity_sync_queued": False}
        ],
    },
    "put_members": {
        "created": 0,
        "updated": 0,
        "unchanged": 1,
        "rejected": 0,
        "results": [
            {
                "index": 0,
                "outcome": "unchanged",
                "error": None,
                "company_id": SAT_EDUCATION_ID,
                "user_id": EXAMPLE_CALLER_ID,
            }
        ],
    },
    "service_status": {
        "ok": True,
        "problems": [],
        "version": "0.1.0",
        "checked_at": "2026-11-30T09:15:00+00:00",
        "mode": "production",
        "database": {
            "reachable": True,
            "migration": "0017",
            "head": "0017",
            "migrated": True,
            "newer_compatible": False,
            "ms": 1.2,
            "error": None,
        },
        "stream": {
            "configured": True,
            "target": "https://chat.stream-io-api.com",
            "base_url": "https://chat.stream-io-api.com",
            "reachable": True,
            "credentials": "ok",
            "ms": 41.0,
            "error": None,
        },
        "outbox": {"pending": 0, "oldest_pending_age_s": None, "dead": 0},
        "reconcile": {
            "last_finished_at": "2026-11-30T09:00:00+00:00",
            "age_s": 900.0,
            "drift": {"identity_missing": 0, "profile_stale": 0, "channel_missing": 0, "member_missing": 0},
            "open_webhook_drift": {},
        },
        "workers_recent": 1,
        "workers": [
            {
                "worker_id": "worker-1:4242:a1b2c3",
                "hostname": "worker-1",
                "pid": 4242,
                "started_at": "2026-11-30T08:00:00+00:00",
                "last_seen_at": "2026-11-30T09:14:55+00:00",
                "age_s": 5.0,
                "recent": True,
            }
        ],
    },
    "readyz": {
        "status": "ready",
        "mode": "production",
        "checks": {"database": {"status": "ok", "ms": 0.8}, "worker": {"status": "ok"}},
        "stream": {
            "status": "up",
            "checked_at": "2026-11-30T09:15:00+00:00",
            "ms": 3.1,
            "target": "https://chat.stream-io-api.com",
        },
    },
}


def parameter_example(operation_id: str, name: str) -> Any:
    """The example value of parameter `name` of an operation, or None when it has none."""
    overrides = OPERATIONS.get(operation_id, {}).get("parameters", {})
    return overrides.get(name, PARAMETERS.get(name))


def add_examples(document: dict[str, Any]) -> None:
    """Put the examples into the OpenAPI document: parameters, request bodies and 200 answers."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation_id = operation.get("operationId", "")
            for parameter in operation.get("parameters", []):
                value = parameter_example(operation_id, parameter["name"])
                if value is not None:
                    parameter["example"] = value
            body = OPERATIONS.get(operation_id, {}).get("body")
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and content is not None:
                content["example"] = body
            answer = ANSWERS.get(operation_id)
            ok = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json")
            if answer is not None and ok is not None:
                ok["example"] = {"success": True, "data": answer}
            for status, response in operation.get("responses", {}).items():
                error = response.get("content", {}).get("application/json")
                if status.isdigit() and int(status) >= 400 and error is not None:
                    error["example"] = error_example(operation_id, int(status))
