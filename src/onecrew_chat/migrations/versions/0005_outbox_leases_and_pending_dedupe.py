"""outbox: a lease token and a version per row, one pending row per dedupe key, an index for webhook retention

A worker claims one row at a time with a fresh `lease_token` and records the outcome only while the token
is still on the row, so a row taken over after its lease ran out is never recorded twice (nor dead-lettered
after another worker finished it). `version` grows each time `add` folds new work into a pending row, so a
worker that finishes an older version reschedules the row instead of marking it done.

The partial unique index makes two concurrent adds of one (kind, dedupe_key) one row; duplicates that the
old select-then-insert could leave behind are collapsed first (the newest payload wins, due at the earliest
time of the group).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PENDING_DEDUPE = "status = 'pending' AND dedupe_key IS NOT NULL"

# The newest row of each duplicated group takes the earliest due time of the group...
COLLAPSE_DUE = f"""
    UPDATE outbox_message SET next_attempt_at = (
        SELECT MIN(other.next_attempt_at) FROM outbox_message other
        WHERE other.kind = outbox_message.kind AND other.dedupe_key = outbox_message.dedupe_key
          AND other.status = 'pending'
    )
    WHERE {PENDING_DEDUPE} AND id IN (
        SELECT MAX(id) FROM outbox_message WHERE {PENDING_DEDUPE} GROUP BY kind, dedupe_key HAVING COUNT(*) > 1
    )
"""
# ...and the older ones go.
COLLAPSE_DELETE = f"""
    DELETE FROM outbox_message
    WHERE {PENDING_DEDUPE} AND id NOT IN (
        SELECT MAX(id) FROM outbox_message WHERE {PENDING_DEDUPE} GROUP BY kind, dedupe_key
    )
"""


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
    op.execute(COLLAPSE_DUE)
    op.execute(COLLAPSE_DELETE)
    op.create_index(
        "uq_outbox_message_pending_dedupe",
        "outbox_message",
        ["kind", "dedupe_key"],
        unique=True,
        sqlite_where=sa.text(PENDING_DEDUPE),
        postgresql_where=sa.text(PENDING_DEDUPE),
    )
    op.create_index("ix_outbox_message_done", "outbox_message", ["status", "updated_at"])
    op.create_index("ix_webhook_event_received_at", "webhook_event", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_event_received_at", table_name="webhook_event")
    op.drop_index("ix_outbox_message_done", table_name="outbox_message")
    op.drop_index("uq_outbox_message_pending_dedupe", table_name="outbox_message")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("lease_token")
