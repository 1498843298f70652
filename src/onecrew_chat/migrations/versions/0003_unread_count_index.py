"""unread count: the conversation's last_message_at copied onto each participant, with a partial index

The unread count (GET /api/chat/conversations/unread-count) is polled six or more times a minute per
client and must stay under 5 ms for a profile with 10,000 conversations. Joining participant rows to
conversations costs 6-16 ms at that size on PostgreSQL; counting entries of a partial index on the
participant table alone costs under 1 ms. Triggers keep the copy equal to conversation.last_message_at
whoever writes it (webhooks, imports, bulk inserts), so no Python code has to remember to.

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

UNREAD = "last_message_at IS NOT NULL AND (last_read_at IS NULL OR last_message_at > last_read_at)"

POSTGRES_TRIGGERS = (
    """
    CREATE FUNCTION conversation_participant_follow_last_message_at() RETURNS trigger AS $$
    BEGIN
        UPDATE conversation_participant SET last_message_at = NEW.last_message_at
        WHERE conversation_id = NEW.id;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER trg_conversation_last_message_at
    AFTER UPDATE OF last_message_at ON conversation
    FOR EACH ROW WHEN (OLD.last_message_at IS DISTINCT FROM NEW.last_message_at)
    EXECUTE FUNCTION conversation_participant_follow_last_message_at()
    """,
    """
    CREATE FUNCTION conversation_participant_copy_last_message_at() RETURNS trigger AS $$
    BEGIN
        SELECT c.last_message_at INTO NEW.last_message_at FROM conversation c WHERE c.id = NEW.conversation_id;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER trg_conversation_participant_last_message_at
    BEFORE INSERT ON conversation_participant
    FOR EACH ROW EXECUTE FUNCTION conversation_participant_copy_last_message_at()
    """,
)

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER trg_conversation_last_message_at
    AFTER UPDATE OF last_message_at ON conversation
    FOR EACH ROW WHEN OLD.last_message_at IS NOT NEW.last_message_at
    BEGIN
        UPDATE conversation_participant SET last_message_at = NEW.last_message_at WHERE conversation_id = NEW.id;
    END
    """,
    """
    CREATE TRIGGER trg_conversation_participant_last_message_at
    AFTER INSERT ON conversation_participant
    FOR EACH ROW
    BEGIN
        UPDATE conversation_participant
        SET last_message_at = (SELECT c.last_message_at FROM conversation c WHERE c.id = NEW.conversation_id)
        WHERE id = NEW.id;
    END
    """,
)


def upgrade() -> None:
    op.add_column("conversation_participant", sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE conversation_participant SET last_message_at = "
        "(SELECT c.last_message_at FROM conversation c WHERE c.id = conversation_participant.conversation_id)"
    )
    op.create_index(
        "ix_conversation_participant_unread",
        "conversation_participant",
        ["participant_type", "participant_id"],
        postgresql_where=sa.text(UNREAD),
        sqlite_where=sa.text(UNREAD),
    )
    triggers = POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS trg_conversation_participant_last_message_at ON conversation_participant")
        op.execute("DROP TRIGGER IF EXISTS trg_conversation_last_message_at ON conversation")
        op.execute("DROP FUNCTION IF EXISTS conversation_participant_copy_last_message_at()")
        op.execute("DROP FUNCTION IF EXISTS conversation_participant_follow_last_message_at()")
    else:
        op.execute("DROP TRIGGER IF EXISTS trg_conversation_participant_last_message_at")
        op.execute("DROP TRIGGER IF EXISTS trg_conversation_last_message_at")
    op.drop_index("ix_conversation_participant_unread", table_name="conversation_participant")
    with op.batch_alter_table("conversation_participant") as batch_op:
        batch_op.drop_column("last_message_at")
