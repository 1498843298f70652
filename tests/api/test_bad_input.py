"""Bad bodies fuzzing rarely produces: every answer is JSON, the right status, and words that say what was wrong.

Malformed, non-object and too deeply nested JSON, huge bodies, wrong Content-Types, NULs and unpaired
surrogates (test_bad_input_urls_and_auth.py has URLs, credentials and methods). Nothing half-done is left
behind: a refused request stores nothing and calls Stream for nothing.
"""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest

from onecrew_chat.models import Company, Conversation, User
from onecrew_chat.webhooks.body import sign
from tests.api.envelope import expect, stored
from tests.conftest import make_settings
from tests.support import STREAM_SECRET, auth, new_id, service_auth

CREATE = "/api/chat/conversations"
WEBHOOK = "/api/chat/webhooks/stream"
TWO_MB = b"{" + b" " * (2 * 1024 * 1024) + b"}"


@pytest.fixture
def settings(sqlite_only_url, emulator, emulator_server):
    """Input checks do not depend on the database (the ones that do run on both, below)."""
    return make_settings(sqlite_only_url, emulator_server.base_url)


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
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--", []),
        ("application/xml", b"<conversation/>", ["not valid JSON"]),
    ],
)
async def test_a_create_body_that_is_not_json_is_400_whatever_its_content_type(
    client, people, content_type, content, words
):
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
    assert response.headers["x-request-id"]  # refused inside the request context: logged and counted like any other
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
        (
            {"conversation_type": "group", "participant_ids": ["{other}"], "name": "a\u0000b"},
            ["name must not contain the NUL character"],
        ),
        (
            {"conversation_type": "user_user", "participant_ids": ["\u0000"]},
            ["participant_ids[0] must not contain the NUL character"],
        ),
        (
            {"conversation_type": "group", "participant_ids": ["{other}"], "name": "\ud800x"},
            ["name must be valid Unicode text", "unpaired surrogate"],
        ),
        (
            {"conversation_type": "group", "participant_ids": ["{other}"], "\u0000": 1},
            ["must not contain the NUL character"],
        ),
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
            answer = await http.put(f"/api/internal/users/{user}", json={"name": "U"}, headers=service_auth())
            assert answer.is_success, answer.text
        create = {"conversation_type": "group", "participant_ids": [other], "name": "a\u0000"}
        answers = [
            await http.put(f"/api/internal/users/{new_id()}", json={"name": "a\u0000b"}, headers=service_auth()),
            await http.put(
                f"/api/internal/companies/{new_id()}", json={"name": "C", "logo_url": "\u0000"}, headers=service_auth()
            ),
            await http.post(CREATE, json=create, headers=auth(me)),
            await http.get(CREATE, params={"search": "\u0000"}, headers=auth(me)),
        ]
        for answer in answers:
            expect(answer, 400, "invalid_text", "must not contain the NUL character")
        async with application.state.runtime.sessionmaker() as session:
            assert await stored(session, User) == 2
            assert await stored(session, Company) == 0 and await stored(session, Conversation) == 0
    assert emulator.count() == 0


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
