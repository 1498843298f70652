"""Forward-only moves of a conversation's last activity and a participant's read marker.

Webhooks (`webhooks.apply`) and the catch-up (`sync.adoption.catchup`) move them the same way: the row changes only
when `at` is later than what it holds, or when one of the caller's extra conditions holds. The statements are built
once on the tables (Core) and only bind their values: `conversation`, `at`, `preview` (activity) or `kind` and
`entity_id` (read marker); bind names differ from column names, which an UPDATE keeps for its SET clause.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import ColumnElement, Table, Update, bindparam, or_, update

from onecrew_chat.db import UTCDateTime
from onecrew_chat.models import Conversation, ConversationParticipant

CONVERSATION = cast(Table, Conversation.__table__)
PARTICIPANT = cast(Table, ConversationParticipant.__table__)
AT = bindparam("at", type_=UTCDateTime())


def move_activity(*also: ColumnElement[bool]) -> Update:
    """Set `last_message_at` and the preview when `at` is later than the stored time (or `also` holds)."""
    return (
        update(CONVERSATION)
        .where(
            CONVERSATION.c.id == bindparam("conversation"),
            or_(CONVERSATION.c.last_message_at.is_(None), CONVERSATION.c.last_message_at < AT, *also),
        )
        .values(last_message_at=AT, last_message_preview=bindparam("preview"))
    )


def move_read_marker(*also: ColumnElement[bool]) -> Update:
    """Set one participant's `last_read_at` when `at` is later than the stored marker (or `also` holds)."""
    return (
        update(PARTICIPANT)
        .where(
            PARTICIPANT.c.conversation_id == bindparam("conversation"),
            PARTICIPANT.c.participant_type == bindparam("kind"),
            PARTICIPANT.c.participant_id == bindparam("entity_id"),
            or_(PARTICIPANT.c.last_read_at.is_(None), PARTICIPANT.c.last_read_at < AT, *also),
        )
        .values(last_read_at=AT)
    )
