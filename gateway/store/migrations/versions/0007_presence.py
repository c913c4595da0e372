"""anti-passback: the direction of an entry, and each tenant's presence at a door with two readers

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # A plain ADD COLUMN (nullable, no default): SQLite does it without copying the entry log.
    op.add_column("entries", sa.Column("direction", sa.String(length=3), nullable=True))
    op.create_table(
        "presence",
        sa.Column("door", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("inside", sa.Boolean(), nullable=False),
        sa.Column("period", sa.DateTime(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("door", "tenant_id"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("presence")
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_column("direction")
