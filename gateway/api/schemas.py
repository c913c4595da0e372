"""Request and response models of the API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from gateway.inputs import check_permit_date, check_text

TenantId = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Text people type: no control or bidi characters (gateway.inputs, shared with the CLI).
Plain = Annotated[str, AfterValidator(lambda v: check_text(v, "text"))]
# Permit dates: years 1900 to 2200 (gateway.inputs.PERMIT_YEARS).
PermitDate = Annotated[date, AfterValidator(lambda v: check_permit_date(v, "date"))]

# Closed sets the API answers with; the message catalogues (gateway.messages) have a word for each.
Role = Literal["admin", "police", "auditor", "operator"]
Method = Literal["card", "face", "card_and_face", "remote", "exit_button"]
Decision = Literal["granted", "denied"]
TenantStatus = Literal["active", "suspended", "revoked"]
AlertState = Literal["raised", "cleared"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantIn(Strict):
    id: Plain = TenantId
    name: Plain = Field(min_length=1, max_length=200)
    permit_number: Plain = Field(min_length=1, max_length=64)
    valid_from: PermitDate | None = None
    valid_to: PermitDate
    room: Plain | None = Field(None, max_length=64)


class TenantPatch(Strict):
    name: Plain | None = Field(None, min_length=1, max_length=200)
    permit_number: Plain | None = Field(None, min_length=1, max_length=64)
    valid_from: PermitDate | None = None
    valid_to: PermitDate | None = None
    room: Plain | None = Field(None, max_length=64)


class TenantOut(BaseModel):
    id: str
    name: str
    permit_number: str
    valid_from: date | None
    valid_to: date
    room: str | None
    status: TenantStatus
    watchlist: bool
    cards: list[int]
    face_templates: int
    created_at: datetime
    updated_at: datetime


class TenantList(BaseModel):
    items: list[TenantOut]
    total: int


class CardIn(Strict):
    number: StrictInt = Field(ge=0, le=0xFFFFFFFF)  # not true, "12" or 1.0


class PhotoVerdictOut(BaseModel):
    name: str
    ok: bool
    reason: str
    detail: str


class FacesOut(BaseModel):
    stored: int
    verdicts: list[PhotoVerdictOut]


class UserIn(Strict):
    name: Plain = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    role: Role


class UserOut(BaseModel):
    name: str
    role: str
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


class TokenOut(BaseModel):
    name: str
    role: str
    token: str


class Me(BaseModel):
    name: str
    role: str
    timezone: str = Field(description="The gateway's IANA time zone: permit dates and local times are in it")
    gateway_id: str


class ReasonIn(Strict):
    """Why an administrator or operator did this; kept in the audit log."""

    reason: Plain | None = Field(None, max_length=200)


class DoorOut(BaseModel):
    id: str
    mode: str
    open: bool | None
    unlocked: bool
    fire_alarm: bool


class OpenResult(BaseModel):
    door: str
    status: Literal["opened"]
