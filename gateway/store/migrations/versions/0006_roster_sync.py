"""roster sync: platform ids of face templates, the watch list (persons of interest)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("face_templates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform_id", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_face_templates_platform_id", ["platform_id"])
    op.create_table(
        "watch_entries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "watch_vectors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("watch_id", sa.String(length=64), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["watch_id"], ["watch_entries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("watch_vectors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_watch_vectors_watch_id"), ["watch_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("watch_vectors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_watch_vectors_watch_id"))
    op.drop_table("watch_vectors")
    op.drop_table("watch_entries")
    with op.batch_alter_table("face_templates", schema=None) as batch_op:
        batch_op.drop_constraint("uq_face_templates_platform_id", type_="unique")
        batch_op.drop_column("platform_id")
