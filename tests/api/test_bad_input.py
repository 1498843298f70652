"""Bad input fuzzing rarely produces: every answer is JSON, the right status, and words that say what was wrong.

Malformed and non-object JSON, huge bodies, wrong Content-Types, NULs and unpaired surrogates, odd path ids,
repeated or mistyped query parameters, broken JWTs, wrong methods and unknown paths. Nothing half-done is left
behind: a refused request stores nothing and calls Stream for nothing.
"""

from __future__ import annotations

import contextlib
import json

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from onecrew_chat.models import Company, Conversation, User
from onecrew_chat.webhooks.signature import sign
from tests.conftest import make_settings
from tests.factories import add_company, add_user
from tests.support import JWT_SECRET, STREAM_SECRET, auth, make_jwt, new_id, service_auth

CREATE = "/api/chat/conversations"
WEBHOOK = "/api/chat/webhooks/stream"
TWO_MB = b"{" + b" " * (2 * 1024 * 1024) + b"}"


@pytest.fixture
def settings(sqlite_only_url, emulator, emulator_server):
    """Input checks do not depend on the database (the ones that do run on both, below)."""
    return make_settings(sqlite_only_url, emulator_server.base_url)


@pytest.fixture
async def people(session):
    """A user who owns a company, and another user."""
    me = await add_user(session, "Me")
    return {"me": me, "other": await add_user(session, "Other"), "company": await add_company(session, owner=me)}


def expect(response: httpx.Response, status: int, code: str, *words: str) -> dict:
    """A JSON error envelope with this status, code and these words in `error`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["success"] is False and body["code"] == code, body
    assert isinstance(body["error"], str)
    for word in words:
        assert word in body["error"], (word, body["error"])
    return body


async def stored(session, model) -> int:
    """How many rows of this model exist now."""
    session.expire_all()
    return await session.scalar(select(func.count()).select_from(model))


def signed(body: bytes) -> dict[str, str]:
    """Headers of a genuine Stream delivery of `body`."""
    return {"X-Signature": sign(body, STREAM_SECRET), "Content-Type": "application/json"}


# --- bodies: malformed JSON, JSON that is not an object, the wrong Content-Type --------------------------------


def body_cases(people: dict) -> dict[str, tuple[str, str, dict]]:
    """(method, url, headers) of every route that reads a JSON body."""
    return {
        "create": ("POST", CREATE, auth(people["me"])),
        "token": ("POST", "/api/chat/token", auth(people["me"])),
        "internal": ("PUT", f"/api/internal/users/{new_id()}", {**service_auth(), "Content-Type": "application/json"}),
    }


@pytest.mark.parametrize(
    ("route", "content", "status", "code", "words"),
    [
        ("create", b"{", 400, "invalid_json", ["Request body is not valid JSON"]),
        ("create", b'{"conversation_type": "user_user",}', 400, "invalid_json", ["not valid JSON"]),
        ("create", b"\xff\xfe{}", 400, "invalid_json", ["not valid JSON"]),
        ("create", b"[1, 2]", 422, "validation_error", ["must be a JSON object"]),
        ("create", b'"user_user"', 422, "validation_error", ["must be a JSON object"]),
        ("create", b"42", 422, "validation_error", ["must be a JSON object"]),
        ("create", b"true", 422, "validation_error", ["must be a JSON object"]),
        ("token", b"{", 400, "invalid_json", ["Request body is not valid JSON"]),
        ("token", b"\xff", 400, "invalid_json", ["not valid JSON"]),
        ("token", b"[1]", 400, "invalid_json", ["must be a JSON object"]),
        ("token", b'"company"', 400, "invalid_json", ["must be a JSON object"]),
        ("token", b'{"profile_type": 7}', 400, "invalid_profile_type", ["profile_type must be a string"]),
        ("internal", b"{", 400, "invalid_json", ["Request body is not valid JSON"]),
        ("internal", b"\xff", 400, "invalid_json", ["not valid JSON", "UTF-8"]),
        ("internal", b"", 422, "validation_error", ["Request body is required", "JSON object"]),
        ("internal", b"[1]", 422, "validation_error", ["Request body must be a JSON object"]),
        ("internal", b"3.5", 422, "validation_error", ["Request body must be a JSON object"]),
        ("internal", b'{"name": ["Amr"]}', 422, "validation_error", ["name Input should be a valid string"]),
    ],
)
async def test_bodies_that_are_not_json_objects(client, people, session, emulator, route, content, status, code, words):
    method, url, headers = body_cases(people)[route]
    expect(await client.request(method, url, content=content, headers=headers), status, code, *words)
    assert await stored(session, Conversation) == 0 and await stored(session, User) == 2
    assert emulator.count() == 0


@pytest.mark.parametrize(
    ("content", "status", "code", "words"),
    [
        (b"{", 400, "invalid_json", ["Webhook body is not valid JSON"]),
        (b"[1]", 400, "invalid_event", ["must be a JSON object with a type"]),
        (b'{"type": 5}', 400, "invalid_event", ["with a type"]),
        (b'"message.new"', 400, "invalid_event", ["JSON object"]),
    ],
)
async def test_signed_webhooks_that_are_not_events(client, content, status, code, words):
    expect(await client.post(WEBHOOK, content=content, headers=signed(content)), status, code, *words)


@pytest.mark.parametrize(
    ("content_type", "content", "words"),
    [
        ("application/x-www-form-urlencoded", b"conversation_type=user_user", ["not valid JSON"]),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--", ["JSON"]),
        ("application/xml", b"<conversation/>", ["not valid JSON"]),
    ],
)
async def test_a_create_body_that_is_not_json_is_400_whatever_its_content_type(client, people, content_type, content, words):
    headers = {**auth(people["me"]), "Content-Type": content_type}
    expect(await client.post(CREATE, content=content, headers=headers), 400, "invalid_json", *words)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_internal_json_sent_without_a_json_content_type_is_told_which_header_to_send(
    client, session, content_type
):
    headers = service_auth() | ({"Content-Type": content_type} if content_type else {})
    response = await client.put(f"/api/internal/users/{new_id()}", content=b'{"name": "Amr"}', headers=headers)
    expect(response, 422, "validation_error", "Request body must be a JSON object", "Content-Type: application/json")
    assert await stored(session, User) == 0


# --- huge bodies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [("POST", CREATE), ("POST", "/api/chat/token"), ("PUT", f"/api/internal/users/{new_id()}")],
)
async def test_a_two_megabyte_body_is_413_with_the_limit_in_words(client, people, session, emulator, method, url):
    headers = service_auth() if url.startswith("/api/internal") else auth(people["me"])
    response = await client.request(method, url, content=TWO_MB, headers=headers)
    expect(response, 413, "body_too_large", "Request body is too large", "2,097,154 bytes", "at most 1,048,576 bytes")
    assert await stored(session, User) == 2 and emulator.count() == 0


async def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(client, people):
    async def chunks():
        for _ in range(40):
            yield b" " * 65536

    response = await client.post(CREATE, content=chunks(), headers=auth(people["me"]))
    expect(response, 413, "body_too_large", "Request body is too large; at most 1,048,576 bytes")


async def test_stream_webhooks_may_be_larger_than_app_requests(client):
    event = {"type": "user.updated", "user": {"id": "x", "bio": "b" * (2 * 1024 * 1024)}}
    body = json.dumps(event).encode()
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "ignored"


# --- NUL characters, unpaired surrogates and other unicode -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"conversation_type": "group", "participant_ids": ["{other}"], "name": "a\u0000b"},
         ["name must not contain the NUL character"]),
        ({"conversation_type": "user_user", "participant_ids": ["\u0000"]},
         ["participant_ids[0] must not contain the NUL character"]),
        ({"conversation_type": "group", "participant_ids": ["{other}"], "name": "\ud800x"},
         ["name must be valid Unicode text", "unpaired surrogate"]),
        ({"conversation_type": "group", "participant_ids": ["{other}"], "\u0000": 1},
         ["must not contain the NUL character"]),
    ],
)
async def test_text_no_database_can_store_is_400_naming_the_field(client, people, session, emulator, body, words):
    raw = json.dumps(body).replace("{other}", people["other"]).encode()
    expect(await client.post(CREATE, content=raw, headers=auth(people["me"])), 400, "invalid_text", *words)
    assert await stored(session, Conversation) == 0 and emulator.count() == 0


async def test_an_escaped_backslash_before_u0000_is_plain_text(client, people, emulator):
    body = {"conversation_type": "group", "participant_ids": [people["other"]], "name": "C:\\u0000"}
    response = await client.post(CREATE, json=body, headers=auth(people["me"]))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["name"] == "C:\\u0000"


async def test_unicode_names_are_stored_as_sent(client, people, emulator):
    name = "فريق التصوير 🎬 Zoë"
    body = {"conversation_type": "group", "participant_ids": [people["other"]], "name": name}
    response = await client.post(CREATE, json=body, headers=auth(people["me"]))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["name"] == name
    found = await client.get(CREATE, params={"search": "التصوير"}, headers=auth(people["me"]))
    assert [c["name"] for c in found.json()["data"]["data"]] == [name]


@pytest.mark.parametrize(
    ("url", "status", "code", "words"),
    [
        (f"{CREATE}?search=%00", 400, "invalid_text", ["Query parameter 'search' must not contain the NUL"]),
        (f"{CREATE}?search=a%00&page=1", 400, "invalid_text", ["'search'"]),
        (f"{CREATE}?search=%ED%A0%80", 200, None, []),  # undecodable bytes are read as U+FFFD
        (f"{CREATE}/%00", 400, "invalid_conversation_id", ["Invalid conversation id"]),
        (f"{CREATE}/%C3%A9t%C3%A9", 400, "invalid_conversation_id", ["letters, digits, '_' or '-'"]),
    ],
)
async def test_nul_and_unicode_in_urls(client, people, url, status, code, words):
    response = await client.get(url, headers=auth(people["me"]))
    if code is None:
        assert response.status_code == status, response.text
    else:
        expect(response, status, code, *words)


@contextlib.asynccontextmanager
async def client_for(database_url: str, emulator_server):
    """A client over an app on this database (the module's own `client` is SQLite only)."""
    from onecrew_chat.api.app import create_app

    application = create_app(make_settings(database_url, emulator_server.base_url))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, application


async def test_nuls_are_refused_before_postgresql_sees_them(database_url, emulator, emulator_server):
    async with client_for(database_url, emulator_server) as (http, application):
        me, other = new_id(), new_id()
        for user in (me, other):
            assert (await http.put(f"/api/internal/users/{user}", json={"name": "U"}, headers=service_auth())).is_success
        create = {"conversation_type": "group", "participant_ids": [other], "name": "a\u0000"}
        answers = [
            await http.put(f"/api/internal/users/{new_id()}", json={"name": "a\u0000b"}, headers=service_auth()),
            await http.put(f"/api/internal/companies/{new_id()}", json={"name": "C", "logo_url": "\u0000"},
                           headers=service_auth()),
            await http.post(CREATE, json=create, headers=auth(me)),
            await http.get(CREATE, params={"search": "\u0000"}, headers=auth(me)),
        ]
        for answer in answers:
            expect(answer, 400, "invalid_text", "must not contain the NUL character")
        async with application.state.runtime.sessionmaker() as session:
            assert await stored(session, User) == 2
            assert await stored(session, Company) == 0 and await stored(session, Conversation) == 0
    assert emulator.count() == 0


# --- path ids --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "code", "words"),
    [
        (f"{CREATE}/a.b", 400, "invalid_conversation_id", ["Invalid conversation id"]),
        (f"{CREATE}/%2E%2E", 400, "invalid_conversation_id", ["Invalid conversation id"]),
        (f"{CREATE}/a%252Fb", 400, "invalid_conversation_id", ["Invalid conversation id"]),
        (f"{CREATE}/{'x' * 129}", 400, "invalid_conversation_id", ["1 to 128"]),
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


BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "scheme only": "Bearer",
    "scheme and spaces": "Bearer    ",
    "basic auth": "Basic dXNlcjpwYXNz",
    "not a jwt": "Bearer not-a-jwt",
    "three dots": "Bearer a.b.c",
    "alg none": "Bearer " + _unsigned({"sub": "3f1c2a9e-8d5b-4c7e-9a61-2b0f4e8d7c15", "exp": 4102444800}),
    "wrong secret": "Bearer " + make_jwt("3f1c2a9e-8d5b-4c7e-9a61-2b0f4e8d7c15", secret="another-secret-" + "0" * 40),
    "expired": "Bearer " + make_jwt("3f1c2a9e-8d5b-4c7e-9a61-2b0f4e8d7c15", exp_in=-60),
    "not yet valid": "Bearer " + make_jwt("3f1c2a9e-8d5b-4c7e-9a61-2b0f4e8d7c15", nbf=4102444800),
    "no sub": "Bearer " + _token({"exp": 4102444800}),
    "non-uuid sub": "Bearer " + make_jwt("amr@example.com"),
    "numeric sub": "Bearer " + _token({"sub": 42, "exp": 4102444800}),
    "object sub": "Bearer " + _token({"sub": {"id": "x"}, "exp": 4102444800}),
    "HS512 not accepted": "Bearer " + make_jwt("3f1c2a9e-8d5b-4c7e-9a61-2b0f4e8d7c15", secret=JWT_SECRET * 2, algorithm="HS512"),
    "service token": "Bearer test-service-token-0123456789",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION.keys())
@pytest.mark.parametrize(("method", "url"), [("POST", "/api/chat/heartbeat"), ("GET", CREATE), ("POST", CREATE)])
async def test_bad_credentials_are_401_invalid_or_expired_token(client, session, method, url, authorization):
    headers = {"Content-Type": "application/json"} | ({"Authorization": authorization} if authorization is not None else {})
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
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": document["components"][
            "securitySchemes"]["OneCrewJWT"]["description"]}
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert all(op.get("tags") for op in operations)
    assert "HTTPValidationError" not in json.dumps(document)
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# --- JSON nested deeper than any parser recursion allows --------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("route", ["create", "token", "internal"])
async def test_json_nested_too_deeply_is_400(client, people, route):
    method, url, headers = body_cases(people)[route]
    expect(await client.request(method, url, content=DEEP, headers=headers), 400, "invalid_json", "not valid JSON")


async def test_a_deeply_nested_body_with_a_nul_escape_is_400_not_500(client, people):
    content = b'{"name": "\\u0000", "x": ' + DEEP + b"}"
    response = await client.post(CREATE, content=content, headers=auth(people["me"]))
    assert response.status_code == 400, response.text


async def test_a_signed_webhook_nested_too_deeply_is_400(client):
    expect(await client.post(WEBHOOK, content=DEEP, headers=signed(DEEP)), 400, "invalid_json", "not valid JSON")


async def test_stream_text_that_no_database_stores_is_not_refused(client):
    body = b'{"type": "message.new", "cid": "messaging:nope", "message": {"text": "a\\u0000b\\ud800"}}'
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.status_code == 200, response.text


async def test_a_nul_deep_inside_a_body_is_found_at_any_depth_json_allows(client, people):
    depth = 900
    content = b'{"a": ' + b"[" * depth + b'"\\u0000"' + b"]" * depth + b"}"
    response = await client.post(CREATE, content=content, headers=auth(people["me"]))
    expect(response, 400, "invalid_text", "a[0]", "must not contain the NUL character")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"\\ud800": 1}', ["\\ud800 must be valid Unicode text"]),
        (b'{"a\\u0000b": 1}', ["a\\u0000b must not contain the NUL character"]),
    ],
)
async def test_field_names_that_no_database_stores_are_named_with_escapes(client, people, raw, words):
    expect(await client.post(CREATE, content=raw, headers=auth(people["me"])), 400, "invalid_text", *words)
