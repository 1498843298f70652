"""cut-over state: whether a cut-over from the old backend is in progress (set by `cutover begin`, cleared by `end`)

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cutover_state",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("began_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cutover_state")),
    )


def downgrade() -> None:
    op.drop_table("cutover_state")
