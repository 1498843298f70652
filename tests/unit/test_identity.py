"""identity.py: Stream ids and channel ids, property-tested; and no code path can send the admin role."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onecrew_chat.identity import (
    ConversationType,
    Identity,
    Kind,
    cid,
    group_channel_id,
    is_valid_channel_id,
    pair_channel_id,
    pair_key,
    pair_kinds_match,
)

STREAM_CHANNEL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # Stream: ^[\w-]*$, at most 64 characters
STREAM_USER_ID = re.compile(r"[@a-z0-9_-]{1,255}")  # Stream docs: a-z, 0-9, @ _ -
PAIR_TYPES = [ConversationType.USER_USER, ConversationType.USER_COMPANY, ConversationType.COMPANY_COMPANY]

uuids = st.uuids().map(str)
identities = st.builds(Identity, st.sampled_from(list(Kind)), uuids)


@given(identities, identities, st.sampled_from(PAIR_TYPES))
def test_a_pair_channel_id_is_the_same_in_both_directions_and_fits_stream(a, b, conversation_type):
    one, two = pair_channel_id(conversation_type, a, b), pair_channel_id(conversation_type, b, a)
    assert one == two
    assert len(one) == len(conversation_type.value) + 1 + 32 <= 64
    assert STREAM_CHANNEL_ID.fullmatch(one) and is_valid_channel_id(one)
    assert not one.startswith("onecrew_"), "the app strips that prefix from channel ids"
    assert pair_key(a, b) == pair_key(b, a)


@given(uuids, uuids)
def test_user_company_channel_ids_are_45_characters(user, company):
    channel_id = pair_channel_id("user_company", Identity.user(user), Identity.company(company))
    assert len(channel_id) == 45 and channel_id.startswith("user_company-")


@given(identities, identities, identities)
def test_different_pairs_get_different_channels(a, b, c):
    if {a, b} != {a, c}:
        assert pair_channel_id("user_user", a, b) != pair_channel_id("user_user", a, c)


@given(st.uuids())
def test_stream_ids_parse_back_and_fit_stream(value):
    for kind in Kind:
        identity = Identity(kind, str(value).upper())
        assert identity.entity_id == str(value), "uuids are stored lowercase"
        assert identity.stream_id == f"onecrew_{kind.value}_{value}"
        assert STREAM_USER_ID.fullmatch(identity.stream_id)
        assert Identity.parse(identity.stream_id) == identity


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "onecrew_user_",
        "onecrew_admin_" + str(uuid.uuid4()),
        "user_" + str(uuid.uuid4()),
        "onecrew_user_not-a-uuid",
        "onecrew_company_" + str(uuid.uuid4()) + "x",
        "onecrew_user_" + str(uuid.uuid4()) + "\n",
        "onecrew_user_" + "-" * 36,
        "onecrew_user_" + str(uuid.uuid4()).upper(),
    ],
)
def test_other_strings_do_not_parse(bad):
    with pytest.raises(ValueError):
        Identity.parse(bad)


@given(st.uuids())
def test_group_channel_ids_fit_stream_and_do_not_start_with_the_app_prefix(value):
    channel_id = group_channel_id(value)
    assert channel_id == f"group-{value.hex}" and STREAM_CHANNEL_ID.fullmatch(channel_id)
    assert cid(channel_id) == f"messaging:{channel_id}"


def test_fresh_group_ids_differ():
    assert group_channel_id() != group_channel_id()


def test_pair_kinds_match_names_the_kinds_of_each_type():
    user, company = Identity.user(str(uuid.uuid4())), Identity.company(str(uuid.uuid4()))
    assert pair_kinds_match(ConversationType.USER_COMPANY, company, user)
    assert not pair_kinds_match(ConversationType.USER_USER, user, company)
    assert pair_kinds_match(ConversationType.COMPANY_COMPANY, company, company)


def test_legacy_channel_ids_are_accepted_on_read_paths():
    long_id = f"user_company-onecrew_company_{uuid.uuid4()}-onecrew_user_{uuid.uuid4()}"
    assert is_valid_channel_id(long_id) and is_valid_channel_id(f"onecrew_{uuid.uuid4()}")
    assert not is_valid_channel_id("messaging:abc") and not is_valid_channel_id("")
    # Matched whole and in ASCII (Stream's channel id characters): `$` would let the newline through.
    assert not is_valid_channel_id(f"onecrew_{uuid.uuid4()}\n") and not is_valid_channel_id("café")


SOURCE = Path(__file__).resolve().parents[2] / "src" / "onecrew_chat"
ADMIN_ROLE = re.compile(r"""(role["']?\s*[:=]\s*["']admin["'])|(["']role["']\s*,\s*["']admin["'])""", re.IGNORECASE)


def test_no_source_file_sets_the_admin_role():
    offenders = [
        f"{path.relative_to(SOURCE)}:{number}"
        for path in SOURCE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ADMIN_ROLE.search(line)
    ]
    assert offenders == []
    assert ADMIN_ROLE.search('UserRequest(id=x, role="admin")'), "the pattern catches the obvious spelling"
    assert ADMIN_ROLE.search("{'role': 'admin'}")
