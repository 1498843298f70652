"""PUT /api/internal/users, /companies, /members: up to 1,000 rows, one outcome per row, one transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from onecrew_chat.identity import Identity
from onecrew_chat.models import Company, CompanyMember, OutboxMessage, StreamIdentity, User
from tests.conftest import make_settings
from tests.support import new_id, service_auth

NO_STREAM = "http://127.0.0.1:9"  # these routes never call Stream; a closed port proves it


@pytest.fixture
def settings(database_url):
    return make_settings(database_url, NO_STREAM)


async def put(client, path: str, body, **kwargs):
    headers = kwargs.pop("headers", service_auth())
    return await client.put(f"/api/internal{path}", json=body, headers=headers, **kwargs)


async def test_users_get_one_outcome_per_row_and_a_repeat_changes_nothing(client, session):
    ids = [new_id() for _ in range(3)]
    rows = [
        {"id": ids[0], "name": "Amr", "image_url": "https://img.example/a.png", "category": "talent"},
        {"id": ids[1].upper(), "name": "Mona", "unknown_field": "ignored"},
        {"id": ids[2], "name": "  "},
        {"id": "amr", "name": "No Uuid"},
        {"name": "No Id"},
        {"id": ids[0], "name": "Amr Again"},
    ]
    first = await put(client, "/users", rows)
    assert first.status_code == 200, first.text
    data = first.json()["data"]
    assert {k: data[k] for k in ("created", "updated", "unchanged", "rejected")} == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 4,
    }
    assert data["results"] == [
        # New identities: the worker mirrors them into Stream before a token or conversation needs them.
        {"index": 0, "outcome": "created", "error": None, "id": ids[0], "identity_sync_queued": True},
        {"index": 1, "outcome": "created", "error": None, "id": ids[1], "identity_sync_queued": True},
        {
            "index": 2,
            "outcome": "rejected",
            "error": "name: String should have at least 1 character",
            "id": ids[2],
            "identity_sync_queued": False,
        },
        {
            "index": 3,
            "outcome": "rejected",
            "error": "id: must be a uuid, got 'amr'",
            "id": "amr",
            "identity_sync_queued": False,
        },
        {"index": 4, "outcome": "rejected", "error": "id: is required", "id": None, "identity_sync_queued": False},
        {
            "index": 5,
            "outcome": "rejected",
            "error": "repeats the id of row 0; only the first one is imported",
            "id": ids[0],
            "identity_sync_queued": False,
        },
    ]
    stored = (await session.scalars(select(User).order_by(User.name))).all()
    assert [(u.id, u.name, u.image_url, u.category) for u in stored] == [
        (ids[0], "Amr", "https://img.example/a.png", "talent"),
        (ids[1], "Mona", None, None),
    ]

    queued = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.dedupe_key))).all()
    assert sorted(m.payload["stream_id"] for m in queued) == sorted(Identity.user(i).stream_id for i in ids[:2])
    again = await put(client, "/users", rows[:2])
    assert [(r["outcome"], r["identity_sync_queued"]) for r in again.json()["data"]["results"]] == [
        ("unchanged", False),
        ("unchanged", False),
    ]
    changed = await put(client, "/users", [{**rows[0], "category": "crew"}])
    assert changed.json()["data"]["updated"] == 1


async def test_a_name_change_queues_the_sync_whether_or_not_stream_holds_the_identity(client, session):
    mirrored, plain, same = new_id(), new_id(), new_id()
    rows = [{"id": mirrored, "name": "Sat"}, {"id": plain, "name": "Plain"}, {"id": same, "name": "Same"}]
    await put(client, "/companies", rows)
    # The worker mirrored `mirrored`; the others' syncs are done too (Stream lost them, say).
    await session.execute(update(OutboxMessage).values(status="done"))
    stream_id = Identity.company(mirrored).stream_id
    session.add(StreamIdentity(stream_id=stream_id, kind="company", entity_id=mirrored, profile_hash="h"))
    await session.commit()

    renamed = await put(
        client,
        "/companies",
        [
            {"id": mirrored, "name": "Sat Education", "logo_url": "https://logo.example/s.png"},
            {"id": plain, "name": "Plain Renamed"},
            {"id": same, "name": "Same"},
        ],
    )
    assert [(r["outcome"], r["identity_sync_queued"]) for r in renamed.json()["data"]["results"]] == [
        ("updated", True),
        ("updated", True),
        ("unchanged", False),
    ]
    session.expire_all()
    queued = (await session.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending"))).all()
    expected = sorted([("identity.sync", stream_id), ("identity.sync", Identity.company(plain).stream_id)])
    assert sorted((m.kind, m.payload["stream_id"]) for m in queued if m.dedupe_key) == expected
    # Each change is also sent once more later, as the per-item PUT does (no dedupe key, due after the settle time).
    assert sorted((m.kind, m.payload["stream_id"]) for m in queued if not m.dedupe_key) == expected
    assert (await session.get(Company, mirrored)).name == "Sat Education"


async def test_members_name_known_companies_and_users(client, session):
    company, user, stranger = new_id(), new_id(), new_id()
    await put(client, "/companies", [{"id": company, "name": "Sat"}])
    await put(client, "/users", [{"id": user, "name": "Amr"}])
    answer = await put(
        client,
        "/members",
        [
            {"company_id": company, "user_id": user, "role": "owner", "invitation_status": "accepted"},
            {"company_id": company, "user_id": stranger, "role": "admin", "invitation_status": "accepted"},
            {"company_id": stranger, "user_id": user, "role": "admin", "invitation_status": "accepted"},
            {"company_id": company, "user_id": user, "role": "boss", "invitation_status": "accepted"},
        ],
    )
    assert answer.status_code == 200, answer.text
    assert [(r["outcome"], r["error"], r["company_id"], r["user_id"]) for r in answer.json()["data"]["results"]] == [
        ("created", None, company, user),
        ("rejected", f"User not found: {stranger}", company, stranger),
        ("rejected", f"Company not found: {stranger}", stranger, user),
        ("rejected", "role: Input should be 'owner', 'admin', 'manager' or 'member'", company, user),
    ]
    members = (await session.execute(select(CompanyMember.company_id, CompanyMember.user_id, CompanyMember.role))).all()
    assert [tuple(m) for m in members] == [(company, user, "owner")]


@pytest.mark.parametrize("path", ["/users", "/companies", "/members"])
async def test_bodies_that_are_not_a_list_of_at_most_1000_objects_are_refused(client, session, path):
    cases = [
        ({"id": new_id(), "name": "Not a list"}, 400, "not_a_list", "Request body must be a JSON array of up to 1,000"),
        ([{"name": "ok"}, "text"], 400, "not_an_object", "Row 1 is not a JSON object"),
        ([{"name": f"U{n}"} for n in range(1001)], 413, "too_many_rows", "Request body has 1,001 rows; at most 1,000"),
    ]
    for body, status, code, words in cases:
        answer = await put(client, path, body)
        assert answer.status_code == status, answer.text
        assert answer.json()["success"] is False and answer.json()["code"] == code
        assert answer.json()["error"].startswith(words), answer.json()["error"]
    broken = await client.put(f"/api/internal{path}", content=b"[{", headers=service_auth())
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_json"
    assert (await put(client, path, [], headers={})).status_code == 401
    assert (await session.scalars(select(User))).all() == []


async def test_a_full_batch_of_1000_users_is_one_request(client, session):
    rows = [
        {"id": new_id(), "name": f"User {n}", "image_url": "https://img.example/" + "x" * 2000} for n in range(1000)
    ]
    answer = await put(client, "/users", rows)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["data"]["created"] == 1000
    assert len((await session.scalars(select(User.id))).all()) == 1000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x" * 256}, "name"),
        ({"name": "Amr", "image_url": "h" * 2049}, "image_url"),
        ({"name": "Amr", "category": "c" * 33}, "category"),
        ({"name": None}, "name"),
        ({"image_url": "https://img.example/a.png"}, "name"),
    ],
)
async def test_the_bulk_put_refuses_exactly_what_the_single_put_refuses(client, body, field):
    user_id = new_id()
    single = await put(client, f"/users/{user_id}", body)
    assert single.status_code == 422 and single.json()["error"].startswith(field), single.text
    bulk = await put(client, "/users", [{"id": user_id, **body}])
    (result,) = bulk.json()["data"]["results"]
    assert result["outcome"] == "rejected" and result["error"].startswith(f"{field}: "), result
    fine = {"id": user_id, "name": "Amr", "image_url": "h" * 2048, "category": "c" * 32}
    assert (await put(client, "/users", [fine])).json()["data"]["created"] == 1
