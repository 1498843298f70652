"""schema compatibility: the oldest code head that still works on the schema, for rolling upgrades and rollbacks

Every migration from this one on declares `oldest_code_head`: the newest migration of the oldest version whose
code still runs on the schema this migration leaves. An expand-only migration names the head of the release
before it, so that release keeps serving while the new one rolls out (and after a rollback); a contract
migration (dropping what an older release still reads) names its own release's head, one release after the
expand. migrations/env.py writes the value of the newest applied migration into this table's one row, and
onecrew_chat.schema_status lets code whose head is at or past it start on a newer schema.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Expand only (new tables no older code reads, as 0016 before it): release 0.1.0, head 0015, runs on this schema.
oldest_code_head = "0015"


def upgrade() -> None:
    op.create_table(
        "schema_compatibility",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("oldest_code_head", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schema_compatibility")),
    )


def downgrade() -> None:
    op.drop_table("schema_compatibility")
