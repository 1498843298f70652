"""provisioning claims, profile versions and keyed creates bound to their conversation

- conversation.provision_lease_token / provision_lease_until: a run that provisions a conversation claims it in
  a short transaction and calls Stream with no transaction open (no row lock is held while waiting on Stream).
- stream_identity.profile_version: the directory row's updated_at of the profile Stream was sent; an older
  profile never overwrites a newer one in the mirror.
- job_lease: a named lease (e.g. the reconciler's) taken and given back in short transactions, instead of an
  advisory lock held by a transaction for a whole run of Stream calls.
- idempotency_key.conversation_id: a keyed create is bound to the conversation it made in the same commit, so a
  retry after any crash replays that conversation instead of making a second one.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from onecrew_chat.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversation", sa.Column("provision_lease_token", sa.String(32), nullable=True))
    op.add_column("conversation", sa.Column("provision_lease_until", UTCDateTime(), nullable=True))
    op.add_column("stream_identity", sa.Column("profile_version", UTCDateTime(), nullable=True))
    op.add_column("idempotency_key", sa.Column("conversation_id", sa.String(36), nullable=True))
    op.create_table(
        "job_lease",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token", sa.String(32), nullable=True),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_job_lease"),
    )


def downgrade() -> None:
    op.drop_table("job_lease")
    with op.batch_alter_table("idempotency_key") as batch:
        batch.drop_column("conversation_id")
    with op.batch_alter_table("stream_identity") as batch:
        batch.drop_column("profile_version")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_column("provision_lease_until")
        batch.drop_column("provision_lease_token")
