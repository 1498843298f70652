"""observability: the time and drift of each reconcile run, and a heartbeat row per running worker

`onecrew-chat status`, GET /api/internal/status and /metrics read them in any process: the last reconcile
(onecrew_reconcile_last_run_timestamp_seconds, drift by kind) and the workers seen recently.

Revision ID: 0015
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("drift", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_run")),
    )
    op.create_index("ix_reconcile_run_finished_at", "reconcile_run", ["finished_at"])
    op.create_table(
        "worker_heartbeat",
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_heartbeat")),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeat")
    op.drop_index("ix_reconcile_run_finished_at", table_name="reconcile_run")
    op.drop_table("reconcile_run")
