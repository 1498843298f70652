"""Each error status in /docs shows an example of that status (not one 403 for all), in the words the service
really answers with: the documented example of an operation's status is compared with a real answer."""

from __future__ import annotations

import pytest

from onecrew_chat.accounts.demo import AMR_ID, SAT_EDUCATION_ID
from onecrew_chat.api.examples import PAIR_CHANNEL_ID
from tests.factories import add_company, add_user
from tests.support import auth, new_id, service_auth

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _documented(document: dict, method: str, path: str, status: int) -> dict:
    answer = document["paths"][path][method]["responses"][str(status)]
    return answer["content"]["application/json"]["example"]


async def test_every_error_status_has_its_own_example(client):
    document = (await client.get("/openapi.json")).json()
    seen: dict[str, set[str]] = {}
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, answer in operation["responses"].items():
                content = answer.get("content", {}).get("application/json")
                if int(status) < 400 or content is None:
                    continue
                example = content["example"]
                assert example["success"] is False and example["error"] and example["code"], operation["operationId"]
                seen.setdefault(status, set()).add(example["code"])
    assert seen["403"] == {"not_company_member"}
    assert all("not_company_member" not in codes for status, codes in seen.items() if status != "403"), seen
    assert seen["408"] == {"provisioning_timeout"}


async def test_documented_error_examples_are_what_the_service_answers(client, session):
    owner = await add_user(session, "Owner")
    stranger = await add_user(session, "Stranger")
    company = await add_company(session, "Lolo Academy", owner=owner)
    document = (await client.get("/openapi.json")).json()
    me = auth(stranger)
    cases = [
        ("get", "/api/chat/conversations/unread-count", 400, {"headers": me}),
        ("get", "/api/chat/conversations", 401, {"headers": {"Authorization": "Bearer nope"}}),
        ("post", "/api/chat/token", 403, {"headers": me, "json": {"profile_type": "company", "company_id": company}}),
        ("post", "/api/chat/token", 400, {"headers": me, "json": {"profile_type": "company"}}),
        ("get", "/api/chat/conversations/{conversation_id}", 404, {"headers": me, "path": PAIR_CHANNEL_ID}),
        ("get", "/api/chat/conversations/{conversation_id}", 400, {"headers": me, "path": "not a conversation"}),
        ("post", "/api/chat/conversations", 400, {"headers": me, "content": b"{"}),
        (
            "post",
            "/api/chat/conversations",
            404,
            {"headers": me, "json": {"conversation_type": "user_user", "participant_ids": [AMR_ID]}},
        ),
        (
            "post",
            "/api/chat/conversations",
            422,
            {
                "headers": auth(owner),
                "json": {"conversation_type": "user_user", "participant_ids": [stranger], "company_id": company},
            },
        ),
        ("post", "/api/chat/webhooks/stream", 401, {"content": b'{"type": "message.new"}'}),
        (
            "post",
            "/api/chat/webhooks/stream",
            415,
            {"content": b'{"type": "message.new"}', "headers": {"Content-Encoding": "br", "X-Signature": "0" * 64}},
        ),
        ("post", "/api/chat/conversations", 413, {"headers": me, "content": b" " * 2_000_000}),
        ("put", "/api/internal/users/{user_id}", 401, {"headers": {"Authorization": "Bearer nope"}, "path": new_id()}),
        ("delete", "/api/internal/users/{user_id}", 422, {"headers": service_auth(), "path": "not-a-uuid"}),
        ("delete", "/api/internal/companies/{company_id}", 422, {"headers": service_auth(), "path": "not-a-uuid"}),
        ("delete", "/api/internal/users/{user_id}", 404, {"headers": service_auth(), "path": "not-a-route/x"}),
        (
            "put",
            "/api/internal/companies/{company_id}/members/{user_id}",
            404,
            {
                "headers": service_auth(),
                "path": f"{SAT_EDUCATION_ID}/members/{AMR_ID}",
                "json": {"role": "owner", "invitation_status": "accepted"},
            },
        ),
        (
            "post",
            "/api/internal/conversations",
            422,
            {
                "headers": service_auth(),
                "json": {
                    "conversation_type": "user_company",
                    "participant_ids": [],
                    "acting": {"type": "user", "id": owner},
                },
            },
        ),
    ]
    wrong = []
    for method, path, status, request in cases:
        url = path
        if "path" in request:
            url = path.split("{")[0] + request.pop("path")
        response = await client.request(method.upper(), url, **request)
        documented = _documented(document, method, path, status)
        if (response.status_code, response.json()) != (status, documented):
            wrong.append((method, path, status, response.status_code, response.json(), documented))
    assert not wrong, "\n".join(map(str, wrong))
