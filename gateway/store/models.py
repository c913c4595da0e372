"""ORM tables of the gateway's SQLite store. The schema is owned by Alembic."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (sortable text in SQLite), returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    permit_number: Mapped[str] = mapped_column(String(64), unique=True)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    room: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    watchlist: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Card(Base):
    __tablename__ = "cards"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Low 24 bits, indexed: a 26-bit Wiegand read carries only these (DESIGN §4).
    low24: Mapped[int] = mapped_column(Integer, index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FaceTemplate(Base):
    """A 128-d dlib face template: never the photo itself (DESIGN §5)."""

    __tablename__ = "face_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # 128 little-endian float32
    quality: Mapped[float] = mapped_column(Float)
    photo_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The town-wide id (DESIGN §6.1): the platform's for a template it sent, one made here
    # (gateway.store.roster_events.new_template_id) for a template enrolled at the building.
    platform_id: Mapped[str | None] = mapped_column(String(64), unique=True)


class WatchEntry(Base):
    """A person of interest on the town's watch list (DESIGN §6.1): not a tenant, never granted anything."""

    __tablename__ = "watch_entries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(1000), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WatchVector(Base):
    """A face template of a watch entry: 128 little-endian float32."""

    __tablename__ = "watch_vectors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    watch_id: Mapped[str] = mapped_column(ForeignKey("watch_entries.id", ondelete="CASCADE"), index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)


class Entry(Base):
    __tablename__ = "entries"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)  # ULID
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    door: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    reader: Mapped[str | None] = mapped_column(String(64))
    card_number: Mapped[int | None] = mapped_column(BigInteger)
    card_bits: Mapped[int | None] = mapped_column(Integer)
    # No foreign key: an entry outlives its tenant (evidence).
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    face_distance: Mapped[float | None] = mapped_column(Float)
    camera: Mapped[str | None] = mapped_column(String(64))
    snapshot: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    direction: Mapped[str | None] = mapped_column(String(3))  # in / out at a door with two readers

    __table_args__ = (
        Index("ix_entries_ts", "ts"),
        Index("ix_entries_tenant_ts", "tenant_id", "ts"),
        Index("ix_entries_card_ts", "card_number", "ts"),
        Index("ix_entries_door_ts", "door", "ts"),
        Index("ix_entries_decision_ts", "decision", "ts"),
    )


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(8))
    severity: Mapped[str] = mapped_column(String(8))
    door: Mapped[str | None] = mapped_column(String(64))
    camera: Mapped[str | None] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    snapshot: Mapped[str | None] = mapped_column(String(255))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_alerts_kind_ts", "kind", "ts"),)


class OutboxItem(Base):
    """One event waiting for the broker's PUBACK.

    `seq` is SQLite AUTOINCREMENT: never reused, even after rows are deleted,
    so it is the gateway's strictly increasing event sequence (DESIGN §6).
    """

    __tablename__ = "outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64))  # suffix under the gateway's base topic
    payload: Mapped[str] = mapped_column(Text)  # JSON without "seq"; added when published
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Presence(Base):
    """Anti-passback (gateway.passback): a tenant's last passage at a door with entry and exit readers."""

    __tablename__ = "presence"

    door: Mapped[str] = mapped_column(String(64), primary_key=True)
    # No foreign key: a roster snapshot that rewrites tenants must not empty the building.
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    inside: Mapped[bool] = mapped_column(Boolean)
    period: Mapped[datetime] = mapped_column(UTCDateTime)  # the reset period it was recorded in (its start)
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # the passage's time


class RosterMeta(Base):
    __tablename__ = "roster_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SeenRequest(Base):
    """A signed platform request's transaction, kept 24 h: the same one again is a replay (DESIGN §6.1)."""

    __tablename__ = "seen_requests"

    transaction: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    route: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rows: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_audit_actor_ts", "actor", "ts"),
        Index("ix_audit_action_ts", "action", "ts"),
    )


class ApiUser(Base):
    """A person or system with one role; the API token is stored only as a hash."""

    __tablename__ = "api_users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # admin / police / auditor / operator
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
