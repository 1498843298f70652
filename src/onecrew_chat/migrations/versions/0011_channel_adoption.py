"""channel adoption: the ledger of Stream channels seen by `import channels` and its resume position

Revision ID: 0011
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adoption_channel",
        sa.Column("cid", sa.String(200), nullable=False),
        sa.Column("channel_type", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("member_ids", sa.JSON(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("preview", sa.String(255), nullable=True),
        sa.Column("reads", sa.JSON(), nullable=False),
        sa.Column("damaged", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("pair_key", sa.String(255), nullable=True),
        sa.Column("conversation_id", sa.String(36), nullable=True),
        sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("cid", name="pk_adoption_channel"),
    )
    op.create_index("ix_adoption_channel_outcome", "adoption_channel", ["outcome"])
    op.create_index("ix_adoption_channel_pair_key", "adoption_channel", ["pair_key"])
    op.create_table(
        "adoption_position",
        sa.Column("channel_type", sa.String(64), nullable=False),
        sa.Column("cursor_us", sa.BigInteger(), nullable=False),
        sa.Column("seen_at_cursor", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel_type", name="pk_adoption_position"),
    )


def downgrade() -> None:
    op.drop_table("adoption_position")
    op.drop_index("ix_adoption_channel_pair_key", table_name="adoption_channel")
    op.drop_index("ix_adoption_channel_outcome", table_name="adoption_channel")
    op.drop_table("adoption_channel")
