"""Bad URLs and credentials: odd path ids, repeated or mistyped query parameters, broken JWTs, wrong methods,
unknown paths. Every answer is JSON with the right status and words that say what was wrong.
"""

from __future__ import annotations

import json
import warnings

import jwt
import pytest

from onecrew_chat.models import Conversation, User
from onecrew_chat.webhooks.body import sign
from tests.api.envelope import expect, stored
from tests.conftest import make_settings
from tests.support import JWT_SECRET, SERVICE_TOKEN, auth, make_jwt, new_id, service_auth

CREATE = "/api/chat/conversations"
WEBHOOK = "/api/chat/webhooks/stream"


@pytest.fixture
def settings(sqlite_only_url, emulator, emulator_server):
    """None of this depends on the database."""
    return make_settings(sqlite_only_url, emulator_server.base_url)


# --- path ids --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "code", "words"),
    [
        (f"{CREATE}/a.b", 400, "invalid_conversation_id", ["Invalid conversation id"]),
        (f"{CREATE}/%2E%2E", 400, "invalid_conversation_id", ["Invalid conversation id"]),
        (f"{CREATE}/a%252Fb", 400, "invalid_conversation_id", ["Invalid conversation id"]),
        (f"{CREATE}/{'x' * 129}", 400, "invalid_conversation_id", ["1 to 128"]),
        # Stream's id characters, matched whole and in ASCII: a trailing newline or a non-ASCII letter is a 400
        # naming the rule, never a 404 for an id that merely was not found.
        (f"{CREATE}/user_user-{'0' * 32}%0A", 400, "invalid_conversation_id", ["1 to 128"]),
        (f"{CREATE}/caf%C3%A9", 400, "invalid_conversation_id", ["Invalid conversation id"]),
        (f"{CREATE}/%E6%97%A5%E6%9C%AC", 400, "invalid_conversation_id", ["Invalid conversation id"]),
        (f"{CREATE}/a%2Fb", 404, "not_found", ["No such endpoint: GET /api/chat/conversations/a/b"]),
        (f"{CREATE}/user_user-{'0' * 32}", 404, "conversation_not_found", ["Conversation not found"]),
        (f"{CREATE}/{new_id()}", 404, "conversation_not_found", ["Conversation not found"]),
    ],
)
async def test_odd_conversation_ids(client, people, path, status, code, words):
    expect(await client.get(path, headers=auth(people["me"])), status, code, *words)
    words = [w.replace("GET", "POST").replace("/a/b", "/a/b/prepare") for w in words]
    expect(await client.post(path + "/prepare", headers=auth(people["me"])), status, code, *words)


@pytest.mark.parametrize("user_id", ["not-a-uuid", "..%2F..", "%00", "1.5"])
async def test_internal_ids_must_be_uuids(client, user_id):
    response = await client.put(f"/api/internal/users/{user_id}", json={"name": "Amr"}, headers=service_auth())
    if "%2F" in user_id:
        expect(response, 404, "not_found", "No such endpoint")
    else:
        expect(response, 422, "invalid_id", "user id must be a uuid")


# --- query parameters: repeated, of the wrong type, out of range -----------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "code", "words"),
    [
        ("page=x", 400, "invalid_page", ["page must be a positive integer, got 'x'"]),
        ("page=1&page=x", 400, "invalid_page", ["got 'x'"]),
        ("page=x&page=1", 200, None, []),  # the last value counts, as with every repeated parameter
        ("page=0", 400, "invalid_page", ["positive integer, got 0"]),
        ("page=-3", 400, "invalid_page", ["positive integer"]),
        ("page=1.5", 400, "invalid_page", ["'1.5'"]),
        ("page=99999999999999999999999", 400, "invalid_page", ["page must be between 1 and 1000000"]),
        ("page=1000001", 400, "invalid_page", ["page must be between 1 and 1000000, got 1000001"]),
        ("limit=0", 400, "invalid_limit", ["limit must be a positive integer"]),
        ("limit=101", 400, "invalid_limit", ["between 1 and 100, got 101"]),
        ("limit=ten", 400, "invalid_limit", ["'ten'"]),
        ("profile_type=admin", 400, "invalid_profile_type", ["'user' or 'company'", "'admin'"]),
        ("profile_type=company", 400, "missing_company_id", ["company_id is required"]),
        ("profile_type=user&profile_type=company", 400, "missing_company_id", ["company_id is required"]),
        ("profile_type=company&company_id=acme", 400, "invalid_company_id", ["company_id must be a UUID", "'acme'"]),
        ("search=" + "s" * 256, 400, "invalid_search", ["at most 255 characters"]),
        ("page=&limit=&search=&profile_type=", 200, None, []),
    ],
)
async def test_list_parameters(client, people, query, status, code, words):
    response = await client.get(f"{CREATE}?{query}", headers=auth(people["me"]))
    if code is None:
        assert response.status_code == status, response.text
    else:
        expect(response, status, code, *words)


@pytest.mark.parametrize(
    ("query", "code", "words"),
    [
        ("", "invalid_profile_type", ["profile_type is required"]),
        ("profile_type=", "invalid_profile_type", ["profile_type is required"]),
        ("profile_type=USER", "invalid_profile_type", ["'USER'"]),
        ("profile_type=company&company_id=", "missing_company_id", ["company_id is required"]),
    ],
)
async def test_unread_count_parameters(client, people, query, code, words):
    response = await client.get(f"{CREATE}/unread-count?{query}", headers=auth(people["me"]))
    expect(response, 400, code, *words)


async def test_token_company_id_that_is_not_a_uuid(client, people, emulator):
    headers = {**auth(people["me"]), "X-Company-Id": "acme"}
    expect(await client.post("/api/chat/token", headers=headers), 400, "invalid_company_id", "'acme'")
    assert emulator.count() == 0


@pytest.mark.parametrize("key", ["has space", "k" * 256, "tab\tinside"])
async def test_idempotency_keys_outside_visible_ascii(client, people, session, emulator, key):
    headers = {**auth(people["me"]), "Idempotency-Key": key}
    body = {"conversation_type": "user_user", "participant_ids": [people["other"]]}
    response = await client.post(CREATE, json=body, headers=headers)
    expect(response, 400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters")
    assert await stored(session, Conversation) == 0 and emulator.count() == 0


# --- credentials ------------------------------------------------------------------------------------------------


def _token(claims: dict, *, secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _unsigned(claims: dict) -> str:
    """An `alg: none` token: header and claims, no signature."""
    return jwt.encode(claims, None, algorithm="none")


def _hs512(sub: str) -> str:
    """A token signed with the right secret but an algorithm the service does not accept."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test secret is shorter than HS512 recommends
        return make_jwt(sub, algorithm="HS512")


SUB = "3f1c2a9e-8d5b-4c7e-9a61-2b0f4e8d7c15"
BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "scheme only": "Bearer",
    "scheme and spaces": "Bearer    ",
    "basic auth": "Basic dXNlcjpwYXNz",
    "not a jwt": "Bearer not-a-jwt",
    "three dots": "Bearer a.b.c",
    "alg none": "Bearer " + _unsigned({"sub": SUB, "exp": 4102444800}),
    "wrong secret": "Bearer " + make_jwt(SUB, secret="another-secret-" + "0" * 40),
    "expired": "Bearer " + make_jwt(SUB, exp_in=-60),
    "not yet valid": "Bearer " + make_jwt(SUB, nbf=4102444800),
    "no sub": "Bearer " + _token({"exp": 4102444800}),
    "non-uuid sub": "Bearer " + make_jwt("amr@example.com"),
    "numeric sub": "Bearer " + _token({"sub": 42, "exp": 4102444800}),
    "object sub": "Bearer " + _token({"sub": {"id": "x"}, "exp": 4102444800}),
    "HS512 (not an accepted algorithm)": "Bearer " + _hs512(SUB),
    "service token": f"Bearer {SERVICE_TOKEN}",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION.keys())
@pytest.mark.parametrize(("method", "url"), [("POST", "/api/chat/heartbeat"), ("GET", CREATE), ("POST", CREATE)])
async def test_bad_credentials_are_401_invalid_or_expired_token(client, session, method, url, authorization):
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await client.request(method, url, content=b"{", headers=headers)
    expect(response, 401, "invalid_token", "Invalid or expired token")
    assert await stored(session, Conversation) == 0


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Bearer {make_jwt(new_id())}"])
async def test_the_internal_api_wants_the_service_token(client, session, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.put(f"/api/internal/users/{new_id()}", json={"name": "Amr"}, headers=headers)
    expect(response, 401, "invalid_service_token", "Invalid service token")
    assert await stored(session, User) == 0


async def test_an_unsigned_webhook_is_401(client):
    body = b'{"type": "message.new"}'
    expect(await client.post(WEBHOOK, content=body), 401, "invalid_signature", "Invalid webhook signature")
    headers = {"X-Signature": sign(body, "another-secret")}
    expect(await client.post(WEBHOOK, content=body, headers=headers), 401, "invalid_signature")


# --- methods and paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("DELETE", CREATE, "GET, POST"),
        ("PUT", "/api/chat/token", "GET, POST"),
        ("GET", "/api/chat/heartbeat", "POST"),
        ("GET", WEBHOOK, "POST"),
        ("PATCH", "/api/internal/users/3f1c2a9e-8d5b-4c7e-9a61-2b0f4e8d7c15", "PUT, DELETE"),
        ("OPTIONS", CREATE, "GET, POST"),
    ],
)
async def test_a_wrong_method_is_405_json_naming_the_allowed_ones(client, method, url, allowed):
    response = await client.request(method, url)
    expect(response, 405, "method_not_allowed", f"Method {method} is not allowed on {url}; use {allowed}")
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize(
    ("method", "url"), [("GET", "/"), ("GET", "/api/chat/nope"), ("POST", f"{CREATE}/x/unknown"), ("GET", "/api")]
)
async def test_an_unknown_path_is_404_json(client, method, url):
    expect(await client.request(method, url), 404, "not_found", f"No such endpoint: {method} {url}")


async def test_the_openapi_document_and_docs_are_served(client):
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["OneCrewJWT"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["OneCrewJWT"]["description"],
    }
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert all(op.get("tags") for op in operations)
    assert "HTTPValidationError" not in json.dumps(document)
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
