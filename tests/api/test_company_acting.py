"""Acting as a company needs an accepted owner or admin membership: on every endpoint that takes company_id
and on every endpoint that infers a company identity (GET by id, prepare):
docs/reference/app-contract.md#acting-as-a-company."""

from __future__ import annotations

import pytest

from onecrew_chat.identity import Identity
from onecrew_chat.models import CompanyMember
from tests.api.conversation_rows import add_conversation
from tests.conftest import make_settings
from tests.factories import add_company, add_users
from tests.support import auth

NOT_A_MEMBER = "User must be a member of this company"
UNKNOWN = "7d1e4c2a-9b3f-4e8d-a6c5-0f2b1d3e5a79"  # in no table
# (role, invitation_status) of the caller in the company; None = no membership at all.
MEMBERSHIPS = [None, ("member", "accepted"), ("manager", "accepted"), ("owner", "pending"), ("admin", "rejected")]


@pytest.fixture
def settings(sqlite_only_url, emulator, emulator_server):
    """Membership checks are plain SELECTs: SQLite is enough."""
    return make_settings(sqlite_only_url, emulator_server.base_url)


@pytest.fixture(params=MEMBERSHIPS, ids=lambda m: "none" if m is None else "-".join(m))
async def outsider(request, session):
    """(caller, company, other user): the caller is not an accepted owner or admin of the company."""
    caller, owner, other = await add_users(session, 3)
    if request.param is None:
        company = await add_company(session, owner=owner)
    else:
        role, status = request.param
        company = await add_company(session, owner=caller, role=role, status=status)
    return caller, company, other


def explicit_requests(company: str, other: str) -> list[tuple[str, str, dict]]:
    """Every way the app (and the old scripts) say "act as this company"."""
    return [
        ("POST", f"/api/chat/token?profile_type=company&company_id={company}", {}),
        ("GET", f"/api/chat/token?profile_type=company&company_id={company}", {}),
        ("POST", "/api/chat/token", {"json": {"profile_type": "company", "company_id": company}}),
        ("POST", "/api/chat/token", {"json": {"company_id": company}}),
        ("POST", "/api/chat/token", {"headers": {"X-Company-Id": company}}),
        ("GET", f"/api/chat/conversations?profile_type=company&company_id={company}", {}),
        ("GET", f"/api/chat/conversations?company_id={company}", {}),
        ("GET", f"/api/chat/conversations/unread-count?profile_type=company&company_id={company}", {}),
        (
            "POST",
            "/api/chat/conversations",
            {"json": {"conversation_type": "user_company", "participant_ids": [other], "company_id": company}},
        ),
    ]


def invalid_creates(company: str, other: str) -> list[tuple[str, str, dict]]:
    """Creates acting as the company that are wrong in other ways too (422s, 404s without the 403)."""
    return [
        # The membership is checked in the directory's query; its 403 still comes before the request's 422s
        # (no other participant, a type the company cannot start, two others in a pair) and 404s.
        (
            "POST",
            "/api/chat/conversations",
            {"json": {"conversation_type": "user_company", "participant_ids": [company], "company_id": company}},
        ),
        (
            "POST",
            "/api/chat/conversations",
            {"json": {"conversation_type": "user_user", "participant_ids": [other], "company_id": company}},
        ),
        (
            "POST",
            "/api/chat/conversations",
            {"json": {"conversation_type": "user_company", "participant_ids": [other, company], "company_id": company}},
        ),
        (
            "POST",
            "/api/chat/conversations",
            {"json": {"conversation_type": "user_company", "participant_ids": [UNKNOWN], "company_id": company}},
        ),
        (
            "POST",
            "/api/chat/conversations",
            {"json": {"conversation_type": "group", "participant_ids": [other, UNKNOWN], "company_id": company}},
        ),
    ]


async def test_explicit_company_id_is_refused_everywhere(client, emulator, outsider):
    caller, company, other = outsider
    for method, url, extra in explicit_requests(company, other) + invalid_creates(company, other):
        headers = {**auth(caller), **extra.pop("headers", {})}
        response = await client.request(method, url, headers=headers, **extra)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json() == {"success": False, "error": NOT_A_MEMBER, "code": "not_company_member"}
    assert emulator.count() == 0, "nothing reaches Stream for a refused identity"


async def test_inferred_company_identity_is_refused(client, session, emulator, outsider):
    caller, company, other = outsider
    conversation = await add_conversation(
        session, Identity.company(company), Identity.user(other), chat_status="provisioning", verified=False
    )
    for method, url in (
        ("GET", f"/api/chat/conversations/{conversation.channel_id}"),
        ("POST", f"/api/chat/conversations/{conversation.channel_id}/prepare"),
    ):
        response = await client.request(method, url, headers=auth(caller))
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"] == "Conversation not found"
    assert emulator.count() == 0


async def test_accepted_owner_and_admin_are_allowed_everywhere(client, session):
    owner, admin, other = await add_users(session, 3)
    company = await add_company(session, owner=owner)
    session.add(CompanyMember(company_id=company, user_id=admin, role="admin", invitation_status="accepted"))
    await session.commit()
    conversation = await add_conversation(session, Identity.company(company), Identity.user(other))
    for caller in (owner, admin):
        for method, url, extra in explicit_requests(company, other):
            headers = {**auth(caller), **extra.pop("headers", {})}
            response = await client.request(method, url, headers=headers, **extra)
            assert response.status_code == 200, (caller, method, url, response.text)
        for method, url in (
            ("GET", f"/api/chat/conversations/{conversation.channel_id}"),
            ("POST", f"/api/chat/conversations/{conversation.channel_id}/prepare"),
        ):
            assert (await client.request(method, url, headers=auth(caller))).status_code == 200


PROFILE_ENDPOINTS = [
    ("POST", "/api/chat/token"),
    ("GET", "/api/chat/token"),
    ("GET", "/api/chat/conversations"),
    ("GET", "/api/chat/conversations/unread-count"),
]


@pytest.mark.parametrize(("method", "path"), PROFILE_ENDPOINTS, ids=lambda v: v.rsplit("/", 1)[-1] if "/" in v else v)
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?profile_type=invalid", "invalid_profile_type"),
        ("?profile_type=admin", "invalid_profile_type"),
        ("?profile_type=company", "missing_company_id"),
        ("?profile_type=company&company_id=not-a-uuid", "invalid_company_id"),
    ],
)
async def test_bad_profile_parameters_are_400_alike_everywhere(client, session, method, path, query, code):
    (me,) = await add_users(session, 1)
    response = await client.request(method, path + query, headers=auth(me))
    assert response.status_code == 400
    assert response.json() == {"success": False, "error": response.json()["error"], "code": code}
    assert isinstance(response.json()["error"], str) and response.json()["error"]
