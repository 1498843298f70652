"""conversation list: each participant row carries its conversation's activity time, indexed per profile

The list (GET /api/chat/conversations) shows a profile's conversations newest activity first, where activity
is COALESCE(conversation.last_message_at, conversation.created_at). Sorting and counting every conversation of
the profile on each page cost 175 ms at 50,000 conversations. `activity_at` copies that time onto each
participant row (the triggers of migration 0003 now keep both copies, whoever writes), so that
ix_conversation_participant_activity (profile, activity_at, conversation_id) hands out a page in order without
sorting, and the page's `total` is a count of the profile's index entries minus its soft-deleted conversations
(found through the small partial index ix_conversation_deleted).

Revision ID: 0012
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0004"
branch_labels = None
depends_on = None

POSTGRES_FUNCTIONS = (
    """
    CREATE OR REPLACE FUNCTION conversation_participant_follow_last_message_at() RETURNS trigger AS $$
    BEGIN
        UPDATE conversation_participant
        SET last_message_at = NEW.last_message_at{follow_activity}
        WHERE conversation_id = NEW.id;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE OR REPLACE FUNCTION conversation_participant_copy_last_message_at() RETURNS trigger AS $$
    BEGIN
        SELECT c.last_message_at{copy_activity} INTO NEW.last_message_at{copy_into}
        FROM conversation c WHERE c.id = NEW.conversation_id FOR SHARE;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
)

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER trg_conversation_last_message_at
    AFTER UPDATE OF last_message_at ON conversation
    FOR EACH ROW WHEN OLD.last_message_at IS NOT NEW.last_message_at
    BEGIN
        UPDATE conversation_participant SET last_message_at = NEW.last_message_at{follow_activity}
        WHERE conversation_id = NEW.id;
    END
    """,
    """
    CREATE TRIGGER trg_conversation_participant_last_message_at
    AFTER INSERT ON conversation_participant
    FOR EACH ROW
    BEGIN
        UPDATE conversation_participant
        SET last_message_at = (SELECT c.last_message_at FROM conversation c WHERE c.id = NEW.conversation_id){copy_activity}
        WHERE id = NEW.id;
    END
    """,
)

WITH_ACTIVITY = {
    "postgresql": {
        "follow_activity": ", activity_at = COALESCE(NEW.last_message_at, NEW.created_at)",
        "copy_activity": ", COALESCE(c.last_message_at, c.created_at)",
        "copy_into": ", NEW.activity_at",
    },
    "sqlite": {
        "follow_activity": ", activity_at = COALESCE(NEW.last_message_at, NEW.created_at)",
        "copy_activity": ", activity_at = (SELECT COALESCE(c.last_message_at, c.created_at) FROM conversation c "
        "WHERE c.id = NEW.conversation_id)",
    },
}
WITHOUT_ACTIVITY = {
    "postgresql": {"follow_activity": "", "copy_activity": "", "copy_into": ""},
    "sqlite": {"follow_activity": "", "copy_activity": ""},
}


def _install(parts: dict[str, dict[str, str]]) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for statement in POSTGRES_FUNCTIONS:
            op.execute(statement.format(**parts[dialect]))
    else:
        op.execute("DROP TRIGGER IF EXISTS trg_conversation_participant_last_message_at")
        op.execute("DROP TRIGGER IF EXISTS trg_conversation_last_message_at")
        for statement in SQLITE_TRIGGERS:
            op.execute(statement.format(**parts[dialect]))


def upgrade() -> None:
    op.add_column("conversation_participant", sa.Column("activity_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE conversation_participant SET activity_at = (SELECT COALESCE(c.last_message_at, c.created_at) "
        "FROM conversation c WHERE c.id = conversation_participant.conversation_id)"
    )
    op.create_index(
        "ix_conversation_participant_activity",
        "conversation_participant",
        ["participant_type", "participant_id", "activity_at", "conversation_id"],
    )
    op.create_index(
        "ix_conversation_deleted",
        "conversation",
        ["id"],
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
    )
    _install(WITH_ACTIVITY)


def downgrade() -> None:
    _install(WITHOUT_ACTIVITY)
    op.drop_index("ix_conversation_deleted", table_name="conversation")
    op.drop_index("ix_conversation_participant_activity", table_name="conversation_participant")
    with op.batch_alter_table("conversation_participant") as batch_op:
        batch_op.drop_column("activity_at")
