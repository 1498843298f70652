"""The JSON shapes the API answers with, rendered from what the services return."""

from __future__ import annotations

from typing import Any

from onecrew_chat.conversations.serialize import ordered_participants, serialize_conversation
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.models import Conversation
from onecrew_chat.sync.participants import Directory
from onecrew_chat.sync.read_model import ConversationView


def ok(data: Any) -> dict[str, Any]:
    """The envelope of every successful answer."""
    return {"success": True, "data": data}


def conversation_json(conversation: ConversationView, directory: Directory) -> dict[str, Any]:
    """A conversation as `data` of the create's and the GET's answers (participants with their directory rows)."""
    return serialize_conversation(conversation, directory)


def prepared_json(conversation: Conversation) -> dict[str, Any]:
    """`{id, chat_status, members}`: what prepare made sure of (members creator first, as the channel lists them)."""
    return {
        "id": conversation.channel_id,
        "chat_status": conversation.chat_status,
        "members": [
            Identity(Kind(p.participant_type), p.participant_id).stream_id for p in ordered_participants(conversation)
        ],
    }
