"""The town's tables. The schema is owned by Alembic (town/store/migrations); on PostgreSQL the
entries table is partitioned by month (the migration writes that DDL), on SQLite it is one table.

Users and the audit log are the gateway's own tables (gateway.store.models.ApiUser, AuditLog),
created here with the same columns, so the gateway's auth, users and audit code serve the town too.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.store.models import ApiUser, AuditLog, UTCDateTime, utcnow


class TownBase(DeclarativeBase):
    pass


# The gateway's user and audit tables, in the town's schema (same names and columns).
api_users = ApiUser.__table__.to_metadata(TownBase.metadata)
audit_log = AuditLog.__table__.to_metadata(TownBase.metadata)


class Gateway(TownBase):
    """One building's controller as the town sees it (the fleet view)."""

    __tablename__ = "gateways"

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    availability: Mapped[str] = mapped_column(String(8), default="unknown")  # online / offline / unknown
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    roster_version: Mapped[int] = mapped_column(BigInteger, default=0)  # what the gateway says it holds
    target_version: Mapped[int] = mapped_column(BigInteger, default=0)  # the newest version of its roster log
    outbox_depth: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # its last …/state payload
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)  # highest event seq received
    missing_seqs: Mapped[int] = mapped_column(BigInteger, default=0)  # seqs below last_seq never received
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TownEntry(TownBase):
    """An entry as the gateway published it. Key (id, ts): on PostgreSQL a unique key of a partitioned
    table must hold the partition key; an event's ts never changes, so (id, ts) deduplicates as id does."""

    __tablename__ = "entries"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    door: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    card_number: Mapped[int | None] = mapped_column(BigInteger)
    card_bits: Mapped[int | None] = mapped_column(Integer)
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    face_distance: Mapped[float | None] = mapped_column(Float)
    camera: Mapped[str | None] = mapped_column(String(64))
    snapshot: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_town_entries_ts", "ts"),
        Index("ix_town_entries_gateway_ts", "gateway_id", "ts"),
        Index("ix_town_entries_tenant_ts", "tenant_id", "ts"),
        Index("ix_town_entries_card_ts", "card_number", "ts"),
    )


class TownAlert(TownBase):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    gateway_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(8))
    severity: Mapped[str] = mapped_column(String(8))
    door: Mapped[str | None] = mapped_column(String(64))
    camera: Mapped[str | None] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    snapshot: Mapped[str | None] = mapped_column(String(255))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_town_alerts_ts", "ts"),
        Index("ix_town_alerts_gateway_ts", "gateway_id", "ts"),
    )


class RosterEvent(TownBase):
    """A change made at a building (`…/events/roster`), kept as received; merged into the register."""

    __tablename__ = "roster_events"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    gateway_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    change: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- the register of record -----------------------------------------------------------------------


class TownTenant(TownBase):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(64), index=True)  # the building
    name: Mapped[str] = mapped_column(String(200))
    permit_number: Mapped[str] = mapped_column(String(64), unique=True)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    room: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / suspended / revoked
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))  # a town user, or "gateway:<id>"

    __table_args__ = (Index("ix_town_tenants_name", "name"),)


class TownCard(TownBase):
    __tablename__ = "cards"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)


class TownTemplate(TownBase):
    """A face template: 128 float32 little-endian (512 bytes), never a photo."""

    __tablename__ = "face_templates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # F + ULID, the same id at every building
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    quality: Mapped[float | None] = mapped_column(Float)
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WatchEntry(TownBase):
    """A person of interest on the town's watch list (police); pushed to every gateway."""

    __tablename__ = "watch_entries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # W + ULID
    name: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    tenant_id: Mapped[str | None] = mapped_column(String(64))  # when the person is a tenant
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WatchVector(TownBase):
    __tablename__ = "watch_vectors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    watch_id: Mapped[str] = mapped_column(ForeignKey("watch_entries.id", ondelete="CASCADE"), index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class RosterLogEntry(TownBase):
    """The operations that take one gateway's roster from `version - 1` to `version`.

    A register change appends one row per gateway concerned (the watch list: every gateway) in the
    transaction of the change; the pusher sends versions roster_version+1 … target_version as one
    signed patch until the gateway answers that it holds the last one."""

    __tablename__ = "roster_log"

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ops: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


__all__ = [
    "Gateway",
    "RosterEvent",
    "RosterLogEntry",
    "TownAlert",
    "TownBase",
    "TownCard",
    "TownEntry",
    "TownTemplate",
    "TownTenant",
    "WatchEntry",
    "WatchVector",
    "api_users",
    "audit_log",
]
