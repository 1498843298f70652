"""unread count: a participant row copies last_message_at under a share lock of its conversation (PostgreSQL)

Migration 0003 copies conversation.last_message_at onto a new participant row with a plain read. Under
READ COMMITTED that read does not see a message being written concurrently, and the message's trigger
does not see the uncommitted participant: the new participant kept the older time for good, and its
unread count missed the message. Reading the conversation FOR SHARE makes the two take turns (the
insert waits for the message's commit, or the message waits for the insert's), so the later one always
sees the other. SQLite has one writer at a time and needs no change.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COPY_FUNCTION = """
    CREATE OR REPLACE FUNCTION conversation_participant_copy_last_message_at() RETURNS trigger AS $$
    BEGIN
        SELECT c.last_message_at INTO NEW.last_message_at FROM conversation c WHERE c.id = NEW.conversation_id{lock};
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(COPY_FUNCTION.format(lock=" FOR SHARE"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(COPY_FUNCTION.format(lock=""))
