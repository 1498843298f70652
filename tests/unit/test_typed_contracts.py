"""The types that replaced strings and untyped look-ups: their values stay what the database, the JSON, the logs and
the metrics have always said, and the little logic they carry holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from onecrew_chat.config import Settings
from onecrew_chat.conversations.create import Created
from onecrew_chat.db import EnumString
from onecrew_chat.identity import ChatStatus
from onecrew_chat.outbox.repository import MessageStatus, Outcome
from onecrew_chat.runtime import Runtime, Shared, build_runtime
from onecrew_chat.stream.errors import DeadlineExceeded, recorded_failure_heals
from onecrew_chat.sync.channels import CLAIM_WAIT, ClaimBusy
from onecrew_chat.sync.participants import Directory
from onecrew_chat.sync.read_model import ConversationRecord


def test_the_stored_and_shown_values_are_the_strings_they_always_were():
    assert [s.value for s in ChatStatus] == ["provisioning", "ready", "failed"]
    assert [s.value for s in MessageStatus] == ["pending", "done", "dead"]
    assert {o.value for o in Outcome} == {"done", "dead", "retry", "rerun", "paused", "lost", "unrecorded", "idle"}
    assert f"{ChatStatus.READY}" == "ready" and str(Outcome.PAUSED) == "paused"


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_an_enum_column_writes_the_value_reads_a_member_and_refuses_anything_else(dialect):
    column = EnumString(ChatStatus, 16)
    assert column.process_bind_param(ChatStatus.FAILED, dialect) == "failed"
    assert type(column.process_bind_param("ready", dialect)) is str
    assert column.process_result_value("provisioning", dialect) is ChatStatus.PROVISIONING
    assert column.process_bind_param(None, dialect) is None and column.process_result_value(None, dialect) is None
    with pytest.raises(ValueError, match="'done' is not a valid ChatStatus"):
        column.process_bind_param("done", dialect)


def _runtime() -> Runtime:
    settings = Settings(mode="development", database_url="sqlite+aiosqlite:///:memory:")
    return build_runtime(settings)


async def test_a_shared_object_is_made_once_per_runtime_and_never_shared_between_runtimes():
    made: list[Runtime] = []

    def make(runtime: Runtime) -> list[str]:
        made.append(runtime)
        return []

    slot = Shared("a cache", make)
    first, second = _runtime(), _runtime()
    assert first.made(slot) is None and made == []
    first.shared(slot).append("kept")
    assert first.shared(slot) == ["kept"] and second.shared(slot) == []
    assert made == [first, second] and first.made(slot) == ["kept"]
    for runtime in (first, second):
        await runtime.close()


def test_a_busy_claim_reads_like_the_deadline_it_is_once_recorded():
    busy = ClaimBusy("gave up after 3.000s", operation=CLAIM_WAIT, retry_after_s=None)
    assert isinstance(busy, DeadlineExceeded)
    recorded = busy.as_deadline()
    assert (
        type(recorded) is DeadlineExceeded and str(recorded) == str(busy) == "ProvisioningClaim: gave up after 3.000s"
    )
    assert recorded_failure_heals(f"{type(recorded).__name__}: {recorded}")


def _created(conversation_type: str, status: ChatStatus) -> Created:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    conversation = ConversationRecord(
        id="c",
        channel_type="messaging",
        channel_id="ch",
        conversation_type=conversation_type,
        name=None,
        pair_key=None,
        created_by_type="user",
        created_by_id="u",
        chat_status=status,
        provision_lease_token=None,
        provision_lease_until=None,
        created_at=now,
        updated_at=now,
    )
    return Created(conversation, Directory(), existing=False)


def test_a_create_still_provisioning_is_retried_only_where_a_retry_finds_the_same_conversation():
    assert _created("user_user", ChatStatus.PROVISIONING).still_provisioning
    assert _created("user_user", ChatStatus.PROVISIONING).retry_finds_it
    assert not _created("group", ChatStatus.PROVISIONING).retry_finds_it
    assert not _created("group", ChatStatus.READY).still_provisioning
    assert not _created("user_company", ChatStatus.FAILED).still_provisioning
