"""The conversation JSON and Stream profiles, built from rows without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from onecrew_chat.api.presenters import conversation_json, iso
from onecrew_chat.api.schemas import ConversationOut
from onecrew_chat.identity import Identity
from onecrew_chat.models import Company, Conversation, ConversationParticipant, User
from onecrew_chat.sync.mirror import partial_update, stream_user
from onecrew_chat.sync.participants import Directory, Profile, company_profile, user_profile

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def rows():
    user = User(id=str(uuid.uuid4()), name="Amr", image_url=None, category="talent")
    company = Company(id=str(uuid.uuid4()), name="Lolo", logo_url="https://l/o.png", subcategory="academy")
    conversation = Conversation(
        id=str(uuid.uuid4()),
        channel_type="messaging",
        channel_id="user_company-" + "a" * 32,
        conversation_type="user_company",
        name=None,
        created_by_type="company",
        created_by_id=company.id,
        chat_status="ready",
        created_at=NOW,
        updated_at=NOW,
        last_message_at=None,
        last_message_preview=None,
    )
    conversation.participants = [
        ConversationParticipant(
            id="p1", participant_type="user", participant_id=user.id, joined_at=NOW, last_read_at=None
        ),
        ConversationParticipant(
            id="p2",
            participant_type="company",
            participant_id=company.id,
            joined_at=NOW,
            last_read_at=NOW + timedelta(seconds=1),
        ),
    ]
    return user, company, conversation


def test_iso_is_utc_with_milliseconds_and_z():
    assert iso(NOW) == "2026-01-02T03:04:05.678Z"
    assert iso(NOW.astimezone(timezone(timedelta(hours=2)))) == "2026-01-02T03:04:05.678Z"
    assert iso(None) is None


def test_the_conversation_json_has_the_apps_shape_with_the_creator_first():
    user, company, conversation = rows()
    data = conversation_json(conversation, Directory({user.id: user}, {company.id: company}))
    ConversationOut.model_validate(data)  # the documented model accepts it
    assert data["id"] == data["conversation_id"] == conversation.channel_id
    first, second = data["participants"]
    assert first["participant_type"] == "company" and first["company"]["logo_url"] == "https://l/o.png"
    assert "user" not in first and second["user"] == {
        "id": user.id,
        "name": "Amr",
        "image_url": None,
        "category": "talent",
    }
    assert first["last_read_at"] == "2026-01-02T03:04:06.678Z"
    assert data["chat"] == {
        "channel_type": "messaging",
        "channel_id": conversation.channel_id,
        "cid": f"messaging:{conversation.channel_id}",
        "status": "ready",
        "members": [Identity.company(company.id).stream_id, Identity.user(user.id).stream_id],
    }


def test_unknown_participants_serialise_as_null():
    user, company, conversation = rows()
    data = conversation_json(conversation, Directory())
    assert [p.get("user", p.get("company")) for p in data["participants"]] == [None, None]


def test_profiles_map_image_url_and_logo_url_and_hash_what_is_sent():
    user, company, _ = rows()
    up, cp = user_profile(user), company_profile(company)
    assert (up.image, cp.image) == (None, "https://l/o.png")
    assert stream_user(cp).custom == {"onecrew_kind": "company"}
    assert up.profile_hash != user_profile(User(id=user.id, name="Other", image_url=None)).profile_hash
    assert up.profile_hash == user_profile(User(id=user.id, name="Amr", image_url="")).profile_hash  # "" is no image


def test_partial_updates_set_the_profile_and_unset_what_is_gone():
    identity = Identity.user(str(uuid.uuid4()))
    stream_id, fields, unset = partial_update(Profile(identity, "Amr", None))
    assert stream_id == identity.stream_id
    assert fields == {"name": "Amr", "onecrew_kind": "user"} and unset == ["image", "onecrew_placeholder"]
    assert "role" not in fields
    placeholder = Profile.placeholder_for(identity)
    assert placeholder.custom == {"onecrew_kind": "user", "onecrew_placeholder": True}
    assert partial_update(placeholder)[2] == ["image"]


def test_the_list_rows_positions_name_the_page_statements_columns():
    """The presenter reads the list's rows by position: each position holds the column it is named after."""
    from onecrew_chat.conversations import listing

    expected = {
        listing.C_ID: "id",
        listing.C_CHANNEL_ID: "channel_id",
        listing.C_STATUS: "chat_status",
        listing.C_PREVIEW: "last_message_preview",
        listing.TOTAL: "total",
        listing.P_TYPE: "participant_type",
        listing.P_READ: "last_read_at",
        listing.U_IMAGE: "image_url",
        listing.U_CATEGORY: "category",
        listing.CO_LOGO: "logo_url",
        listing.CO_SUBCATEGORY: "subcategory",
    }
    for statement in (listing._PAGE.statement, listing._SEARCH_PAGE.statement):
        keys = [column.key for column in statement.selected_columns]
        assert len(keys) == listing.CO_SUBCATEGORY + 1
        assert {position: keys[position] for position in expected} == expected
