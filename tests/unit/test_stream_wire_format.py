"""The gateway builds its hot calls' bodies as plain dicts; they must be exactly what the SDK's models send."""

from __future__ import annotations

import pytest
from getstream.base import _strip_none as sdk_strip_none
from getstream.models import (
    ChannelGetOrCreateRequest,
    ChannelInput,
    ChannelMemberRequest,
    UpdateChannelRequest,
    UpdateUsersRequest,
    UserRequest,
)

from onecrew_chat.stream.client import (
    StreamUser,
    add_members_body,
    get_or_create_body,
    strip_none,
    upsert_users_body,
)


def sdk_wire(model) -> dict:
    """What the SDK puts on the wire for a request model: its dict without None values."""
    return sdk_strip_none(model.to_dict())


@pytest.mark.parametrize(
    "users",
    [
        [StreamUser("onecrew_user_a", "Amr", None, {"onecrew_kind": "user"})],
        [
            StreamUser("onecrew_company_b", "Sat", "https://x/logo.png", {"onecrew_kind": "company"}),
            StreamUser("onecrew_user_c", "C", None, {"onecrew_kind": "user", "onecrew_placeholder": True}),
        ],
    ],
)
def test_upsert_users_body_is_the_sdks(users):
    model = UpdateUsersRequest(
        users={
            u.id: UserRequest(id=u.id, name=u.name, image=u.image, role="user", custom=dict(u.custom)) for u in users
        }
    )
    assert upsert_users_body(users) == sdk_wire(model)


@pytest.mark.parametrize(
    ("members", "custom"),
    [(["a", "b"], None), (["a"], {"name": "Crew"}), ([], None), ([], {"name": "Crew"})],
)
def test_get_or_create_body_is_the_sdks(members, custom):
    model = ChannelGetOrCreateRequest(
        data=ChannelInput(
            created_by_id="a",
            members=[ChannelMemberRequest(user_id=m) for m in members] or None,
            custom=dict(custom) if custom else None,
        )
    )
    assert get_or_create_body("a", members, custom) == sdk_wire(model)


def test_add_members_body_is_the_sdks():
    model = UpdateChannelRequest(add_members=[ChannelMemberRequest(user_id=m) for m in ("a", "b")])
    assert add_members_body(["a", "b"]) == sdk_wire(model)


def test_none_is_dropped_at_any_depth_as_the_sdk_does():
    body = {"a": None, "b": {"c": None, "d": [1, {"e": None, "f": 2}]}, "g": 0}
    assert strip_none(body) == sdk_strip_none(body)
