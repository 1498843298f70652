"""Every bad create request gets its status, a stable code and words that say what is wrong (never a 500)."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings
from tests.factories import add_company, add_user
from tests.support import auth, new_id

URL = "/api/chat/conversations"


@pytest.fixture
def settings(sqlite_only_url, emulator, emulator_server):
    """Validation does not depend on the database: SQLite only."""
    return make_settings(sqlite_only_url, emulator_server.base_url)


@pytest.fixture
async def people(client, session):
    """A user, a second user, a company owned by the first user and a company owned by nobody we know."""
    me = await add_user(session, "Me")
    other = await add_user(session, "Other")
    mine = await add_company(session, "Mine", owner=me)
    theirs = await add_company(session, "Theirs")
    return {"me": me, "other": other, "mine": mine, "theirs": theirs}


def expect(response, status: int, code: str, *words: str) -> None:
    """The error shape the app reads, with these words in the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code, body
    assert isinstance(body["error"], str)
    for word in words:
        assert word in body["error"], (word, body["error"])


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"participant_ids": ["x"]}, "validation_error", ["conversation_type", "is required"]),
        (
            {"conversation_type": "dm", "participant_ids": [new_id()]},
            "validation_error",
            ["conversation_type must be one of user_user, user_company, company_company, group", "'dm'"],
        ),
        ({"conversation_type": "user_user"}, "validation_error", ["participant_ids", "is required"]),
        (
            {"conversation_type": "user_user", "participant_ids": []},
            "validation_error",
            ["participant_ids must name at least one other participant"],
        ),
        (
            {"conversation_type": "user_user", "participant_ids": "abc"},
            "validation_error",
            ["participant_ids must be a list"],
        ),
        (
            {"conversation_type": "group", "participant_ids": [new_id(), "not-a-uuid", 7]},
            "validation_error",
            ["participant_ids must be UUIDs", "[1] 'not-a-uuid'", "[2] '7'"],
        ),
        (
            {"conversation_type": "group", "participant_ids": [new_id() for _ in range(1001)]},
            "validation_error",
            ["1001 entries", "at most 1000"],
        ),
        (
            {"conversation_type": "group", "participant_ids": [new_id()], "name": "n" * 256},
            "validation_error",
            ["name is 256 characters long", "at most 255"],
        ),
        (
            {"conversation_type": "user_user", "participant_ids": [new_id()], "company_id": "acme"},
            "validation_error",
            ["company_id must be a UUID", "'acme'"],
        ),
    ],
)
async def test_malformed_bodies_are_422_and_say_what_is_wrong(client, people, body, code, words):
    expect(await client.post(URL, json=body, headers=auth(people["me"])), 422, code, *words)


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"", 400, ["Request body is empty"]),
        (b"   ", 400, ["Request body is empty"]),
        (b"{not json", 400, ["not valid JSON"]),
        (b"\xff\xfe", 400, ["not valid JSON"]),
        (b"[1, 2]", 422, ["must be a JSON object"]),
        (b"null", 422, ["must be a JSON object"]),
    ],
)
async def test_empty_or_non_json_bodies_are_client_errors(client, people, content, status, words):
    response = await client.post(URL, content=content, headers=auth(people["me"]))
    assert response.status_code == status, response.text
    assert all(word in response.json()["error"] for word in words)


async def test_text_plain_content_type_with_a_json_body_is_accepted(client, people, emulator):
    headers = {**auth(people["me"]), "Content-Type": "text/plain"}
    body = '{"conversation_type": "user_user", "participant_ids": ["%s"]}' % people["other"]
    assert (await client.post(URL, content=body, headers=headers)).status_code == 200


async def test_without_a_valid_token_it_is_401_before_anything_else(client, people):
    response = await client.post(URL, content=b"{", headers={"Content-Type": "application/json"})
    expect(response, 401, "invalid_token", "Invalid or expired token")


async def test_unknown_participant_is_404_with_its_id(client, people, emulator):
    ghost = new_id()
    response = await client.post(
        URL, json={"conversation_type": "user_user", "participant_ids": [ghost]}, headers=auth(people["me"])
    )
    expect(response, 404, "participant_not_found", f"Other participant not found: {ghost}")
    assert emulator.count() == 0


async def test_unknown_group_members_are_listed(client, people):
    ghosts = [new_id(), new_id()]
    body = {"conversation_type": "group", "participant_ids": [people["other"], *ghosts]}
    expect(await client.post(URL, json=body, headers=auth(people["me"])), 404, "participant_not_found", *ghosts)


@pytest.mark.parametrize(
    ("role", "status"), [("member", "accepted"), ("manager", "accepted"), ("owner", "pending"), ("admin", "rejected")]
)
async def test_acting_as_a_company_needs_an_accepted_owner_or_admin_membership(client, session, people, role, status):
    company = await add_company(session, "Strict", owner=people["me"], role=role, status=status)
    body = {"conversation_type": "user_company", "participant_ids": [people["other"]], "company_id": company}
    expect(
        await client.post(URL, json=body, headers=auth(people["me"])),
        403,
        "not_company_member",
        "User must be a member of this company",
    )


async def test_acting_as_a_company_of_someone_else_is_403(client, people):
    body = {"conversation_type": "user_company", "participant_ids": [people["other"]], "company_id": people["theirs"]}
    expect(await client.post(URL, json=body, headers=auth(people["me"])), 403, "not_company_member", "must be a member")


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("user_company as user with a user", ["is a user", "needs a company"]),
        ("user_company as company with a company", ["is a company", "needs a user"]),
        ("user_user with a company", ["is a company", "needs a user"]),
        ("user_user as a company", ["user_user conversations are between two users"]),
        ("company_company as a user", ["company_company conversations need company_id"]),
        ("company_company with a user", ["is a user", "needs a company"]),
        ("pair with two others", ["exactly one other participant; got 2"]),
        ("only yourself", ["other than yourself"]),
    ],
)
async def test_kinds_that_contradict_the_conversation_type_are_422_naming_the_id(client, people, case, words):
    me, other, mine, theirs = people["me"], people["other"], people["mine"], people["theirs"]
    bodies = {
        "user_company as user with a user": {"conversation_type": "user_company", "participant_ids": [other]},
        "user_company as company with a company": {
            "conversation_type": "user_company",
            "participant_ids": [theirs],
            "company_id": mine,
        },
        "user_user with a company": {"conversation_type": "user_user", "participant_ids": [theirs]},
        "user_user as a company": {"conversation_type": "user_user", "participant_ids": [other], "company_id": mine},
        "company_company as a user": {"conversation_type": "company_company", "participant_ids": [theirs]},
        "company_company with a user": {
            "conversation_type": "company_company",
            "participant_ids": [other],
            "company_id": mine,
        },
        "pair with two others": {"conversation_type": "user_user", "participant_ids": [other, new_id()]},
        "only yourself": {"conversation_type": "user_user", "participant_ids": [me]},
    }
    response = await client.post(URL, json=bodies[case], headers=auth(me))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] in {
        "participant_kind_mismatch",
        "conversation_type_mismatch",
        "too_many_participants",
        "no_other_participant",
    }
    for word in words:
        assert word in body["error"], (word, body["error"])
    if body["code"] == "participant_kind_mismatch":
        named = bodies[case]["participant_ids"][0]
        assert named in body["error"]


async def test_caller_missing_from_the_directory_is_404_with_words(client, people):
    stranger = new_id()
    body = {"conversation_type": "user_user", "participant_ids": [people["other"]]}
    expect(await client.post(URL, json=body, headers=auth(stranger)), 404, "caller_not_found", stranger, "directory")


async def test_a_bad_idempotency_key_is_400(client, people):
    body = {"conversation_type": "user_user", "participant_ids": [people["other"]]}
    response = await client.post(URL, json=body, headers={**auth(people["me"]), "Idempotency-Key": "k" * 256})
    expect(response, 400, "invalid_idempotency_key", "Idempotency-Key")
