"""query indexes: audit log by action

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

The auditor filters the audit log by actor (ix_audit_actor_ts) and by action;
this adds the second. The entries' (column, ts) indexes already serve every
police filter: gateway.store.queries orders by (ts, seq) so that they do.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_action_ts", ["action", "ts"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_action_ts")
