"""initial schema: fleet, entries (monthly partitions on PostgreSQL), alerts, roster events, the
register, the watch list, the roster log, users and audit

Revision ID: 0001
Revises:
Create Date: 2026-11-26

"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from town.store.partitions import add_months, create_default_partition, create_month_partition, month_start

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=nullable)  # naive UTC (gateway.store.models.UTCDateTime)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"

    op.create_table(
        "gateways",
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("availability", sa.String(length=8), nullable=False),
        _ts("last_seen", nullable=True),
        sa.Column("roster_version", sa.BigInteger(), nullable=False),
        sa.Column("target_version", sa.BigInteger(), nullable=False),
        sa.Column("outbox_depth", sa.Integer(), nullable=True),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("missing_seqs", sa.BigInteger(), nullable=False),
        _ts("first_seen"),
        sa.PrimaryKeyConstraint("gateway_id"),
    )

    # Partitioned by month on PostgreSQL (the key must hold ts, hence (id, ts)); one table on SQLite.
    op.create_table(
        "entries",
        sa.Column("id", sa.String(length=26), nullable=False),
        _ts("ts"),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("door", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("card_number", sa.BigInteger(), nullable=True),
        sa.Column("card_bits", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("face_distance", sa.Float(), nullable=True),
        sa.Column("camera", sa.String(length=64), nullable=True),
        sa.Column("snapshot", sa.String(length=255), nullable=True),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("id", "ts"),
        postgresql_partition_by="RANGE (ts)",
    )
    # On the partitioned parent: every partition, present and future, gets them.
    op.create_index("ix_town_entries_ts", "entries", ["ts"])
    op.create_index("ix_town_entries_gateway_ts", "entries", ["gateway_id", "ts"])
    op.create_index("ix_town_entries_tenant_ts", "entries", ["tenant_id", "ts"])
    op.create_index("ix_town_entries_card_ts", "entries", ["card_number", "ts"])
    if postgres:
        conn = op.get_bind()
        create_default_partition(conn)
        this_month = month_start(datetime.now(UTC))
        for n in range(-1, 3):
            create_month_partition(conn, add_months(this_month, n))

    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=26), nullable=False),
        _ts("ts"),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("door", sa.String(length=64), nullable=True),
        sa.Column("camera", sa.String(length=64), nullable=True),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("snapshot", sa.String(length=255), nullable=True),
        _ts("acknowledged_at", nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_town_alerts_ts", "alerts", ["ts"])
    op.create_index("ix_town_alerts_gateway_ts", "alerts", ["gateway_id", "ts"])

    op.create_table(
        "roster_events",
        sa.Column("id", sa.String(length=26), nullable=False),
        _ts("ts"),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("change", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_roster_events_gateway_id", "roster_events", ["gateway_id"])

    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("permit_number", sa.String(length=64), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("room", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("permit_number"),
    )
    op.create_index("ix_tenants_gateway_id", "tenants", ["gateway_id"])
    op.create_index("ix_town_tenants_name", "tenants", ["name"])

    op.create_table(
        "cards",
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_index("ix_cards_tenant_id", "cards", ["tenant_id"])

    op.create_table(
        "face_templates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.Column("photo_sha256", sa.String(length=64), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_face_templates_tenant_id", "face_templates", ["tenant_id"])

    op.create_table(
        "watch_entries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "watch_vectors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("watch_id", sa.String(length=32), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["watch_id"], ["watch_entries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_watch_vectors_watch_id", "watch_vectors", ["watch_id"])

    op.create_table(
        "roster_log",
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        _ts("ts"),
        sa.Column("ops", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "version"),
    )

    # The gateway's user and audit tables, same columns (gateway.store.models.ApiUser, AuditLog).
    op.create_table(
        "api_users",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _ts("created_at"),
        _ts("rotated_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _ts("ts"),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("route", sa.String(length=255), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    op.create_index("ix_audit_actor_ts", "audit_log", ["actor", "ts"])
    op.create_index("ix_audit_action_ts", "audit_log", ["action", "ts"])


def downgrade() -> None:
    for table in ("audit_log", "api_users", "roster_log", "watch_vectors", "watch_entries", "face_templates",
                  "cards", "tenants", "roster_events", "alerts", "entries", "gateways"):  # fmt: skip
        op.drop_table(table)  # on PostgreSQL dropping `entries` drops its partitions too
