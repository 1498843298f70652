"""The create request model: canonical ids, clear messages, a fingerprint that ignores spelling."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from onecrew_chat.conversations.idempotency import fingerprint, parse_key
from onecrew_chat.conversations.request import CreateConversationRequest
from onecrew_chat.errors import BadRequest
from onecrew_chat.identity import ConversationType


def test_ids_are_normalised_and_deduplicated_in_order():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    request = CreateConversationRequest.model_validate(
        {"conversation_type": "group", "participant_ids": [a.upper(), b, f" {a} "], "company_id": "", "extra": 1}
    )
    assert request.participant_ids == [a, b]
    assert request.company_id is None and request.conversation_type is ConversationType.GROUP


def test_blank_names_are_none_and_names_are_trimmed():
    base = {"conversation_type": "group", "participant_ids": [str(uuid.uuid4())]}
    assert CreateConversationRequest.model_validate({**base, "name": "   "}).name is None
    assert CreateConversationRequest.model_validate({**base, "name": " Crew "}).name == "Crew"
    assert len(CreateConversationRequest.model_validate({**base, "name": "n" * 255}).name) == 255


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("conversation_type", None, "must be one of"),
        ("conversation_type", "USER_USER", "must be one of"),
        ("participant_ids", [None], "[0] 'None'"),
        ("participant_ids", [str(uuid.uuid4())] * 1001, "at most 1000"),
        ("participant_ids", {"a": 1}, "must be a list"),
        ("name", 5, "must be a string"),
        ("company_id", 12, "must be a UUID"),
    ],
)
def test_bad_fields_say_what_is_wrong(field, value, words):
    body = {"conversation_type": "user_user", "participant_ids": [str(uuid.uuid4())], field: value}
    with pytest.raises(ValidationError) as raised:
        CreateConversationRequest.model_validate(body)
    assert words in str(raised.value)


def test_many_bad_ids_are_summarised():
    with pytest.raises(ValidationError) as raised:
        CreateConversationRequest.model_validate(
            {"conversation_type": "group", "participant_ids": [f"x{n}" for n in range(8)]}
        )
    assert "[0] 'x0'" in str(raised.value) and "and 3 more" in str(raised.value)


def test_the_fingerprint_ignores_order_case_and_key_order_but_not_content():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    one = CreateConversationRequest.model_validate({"conversation_type": "group", "participant_ids": [a, b]})
    two = CreateConversationRequest.model_validate({"participant_ids": [b.upper(), a], "conversation_type": "group"})
    three = CreateConversationRequest.model_validate(
        {"conversation_type": "group", "participant_ids": [a, b], "name": "x"}
    )
    assert fingerprint(one.fingerprint_source()) == fingerprint(two.fingerprint_source())
    assert fingerprint(one.fingerprint_source()) != fingerprint(three.fingerprint_source())
    assert len(fingerprint(one.fingerprint_source())) == 64


@pytest.mark.parametrize("key", ["", "   ", "k" * 256, "has space", "naïve"])
def test_bad_idempotency_keys_are_400(key):
    with pytest.raises(BadRequest):
        parse_key(key)


def test_good_idempotency_keys_are_kept():
    assert parse_key(f" {uuid.uuid4()} ").count("-") == 4
    assert parse_key("k" * 255) == "k" * 255
