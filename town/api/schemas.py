"""Request and response models of the town's API: the gateway's (gateway.api.schemas), with the building."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from gateway.api.schemas import Plain, TenantIn, TenantPatch, TenantStatus

# A building is its gateway's id (config gateway_id).
GATEWAY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
GatewayId = Field(min_length=1, max_length=64, pattern=GATEWAY_ID_PATTERN)


class TownTenantIn(TenantIn):
    gateway_id: Plain = GatewayId


class TownTenantPatch(TenantPatch):
    gateway_id: Plain | None = Field(None, min_length=1, max_length=64, pattern=GATEWAY_ID_PATTERN)


class TenantOut(BaseModel):
    id: str
    gateway_id: str
    name: str
    permit_number: str
    valid_from: date | None
    valid_to: date
    room: str | None
    status: TenantStatus
    watchlist: bool = Field(description="On the town's watch list")
    cards: list[int]
    face_templates: int
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


class TenantList(BaseModel):
    items: list[TenantOut]
    total: int


class Me(BaseModel):
    name: str
    role: str
    timezone: str = Field(description="The town's IANA time zone: local times and permit dates are in it")


class GatewayOut(BaseModel):
    gateway_id: str
    availability: str = Field(description="online / offline / unknown (its MQTT availability)")
    last_seen: str | None = Field(description="RFC 3339 UTC: the last message from it")
    roster_version: int = Field(description="The roster version it says it holds")
    target_version: int = Field(description="The newest version of its roster log")
    outbox_depth: int | None
    open_alerts: int = Field(description="Raised, not acknowledged, in the last 30 days")
    missing_seqs: int = Field(description="Event sequence numbers below the highest received that never came")
    last_seq: int
    software: str | None
    last_error: str | None


class WatchOut(BaseModel):
    id: str
    name: str
    note: str | None
    tenant_id: str | None
    templates: int
    created_by: str
    created_at: datetime


class WatchList(BaseModel):
    items: list[WatchOut]
    total: int
