"""The register of record (admin): tenants with their building, cards, face templates from photos, status.

Each change is one of town.register's functions (which append the roster operations to the building's log
and write the audit row, in the route's transaction); after the commit the pusher is woken to send it.
Photos are checked in the gateway API's worker process (gateway.api.photo_checks), as at a building.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.api.auth import Caller, require
from gateway.api.errors import ApiError
from gateway.api.limits import searching
from gateway.api.routes_enrolment import parse_cards
from gateway.api.routes_records import audit_read
from gateway.api.routes_roster import MAX_PHOTO_BYTES
from gateway.api.schemas import CardIn, FacesOut, PhotoVerdictOut, ReasonIn, TenantStatus
from gateway.enrolment import MAX_PHOTOS, PhotoResult
from town import register
from town.api import queries
from town.api.schemas import TenantList, TenantOut, TownTenantIn, TownTenantPatch
from town.register import RegisterError
from town.store.models import TownCard, TownTenant

router = APIRouter(tags=["register"])
ADMIN = require("admin")
READERS = require("admin", "police")
_STATUS = {404: "not_found", 409: "conflict", 422: "invalid_request"}
_CODES = {"not_found": 404, "conflict": 409, "invalid": 422}


def register_error(exc: RegisterError) -> ApiError:
    status = _CODES.get(getattr(exc, "code", "invalid"), 422)
    return ApiError(status, _STATUS[status], str(exc))


@contextmanager
def changing(request: Request) -> Iterator[Session]:
    """A register change: one transaction, RegisterError as its HTTP error, the pusher woken after the commit."""
    ctx = request.app.state.ctx
    try:
        with ctx.sessions() as s, s.begin():
            yield s
    except RegisterError as exc:
        raise register_error(exc) from None
    except IntegrityError as exc:  # someone made the same id, permit or card meanwhile
        raise ApiError(409, "conflict", f"nothing was changed: {exc.orig}") from None
    ctx.pusher.wake()


def tenants_out(s: Session, rows: Sequence[TownTenant]) -> list[TenantOut]:
    cards, faces, watched = queries.tenant_cards_and_faces(s.connection(), [t.id for t in rows])
    return [TenantOut(id=t.id, gateway_id=t.gateway_id, name=t.name, permit_number=t.permit_number,
                      valid_from=t.valid_from, valid_to=t.valid_to, room=t.room, status=t.status,
                      watchlist=t.id in watched, cards=cards.get(t.id, []), face_templates=faces.get(t.id, 0),
                      created_at=t.created_at, updated_at=t.updated_at, updated_by=t.updated_by)
            for t in rows]  # fmt: skip


def _one(s: Session, tenant_id: str) -> TenantOut:
    return tenants_out(s, [register.get_tenant(s, tenant_id)])[0]


def _police_read(request: Request, caller: Caller, action: str, filters: dict[str, Any], rows: int) -> None:
    """Police look-ups of people are audited like entry reads; the admin's own register work is not."""
    if caller.role == "police":
        audit_read(request, caller, action, filters, rows)


# --- tenants ----------------------------------------------------------------------------------------------


@router.post("/tenants", status_code=201, response_model=TenantOut)
def create_tenant(body: TownTenantIn, request: Request, caller: Caller = Depends(ADMIN)) -> TenantOut:
    """Enrol a tenant at a building (`gateway_id`); pushed to that building."""
    with changing(request) as s:
        register.add_tenant(s, caller.name, gateway_id=body.gateway_id, id=body.id, name=body.name,
                            permit=body.permit_number, valid_to=body.valid_to, valid_from=body.valid_from,
                            room=body.room, route="POST /tenants")  # fmt: skip
        out = _one(s, body.id)
    return out


@router.get("/tenants", response_model=TenantList)
def list_tenants(
    request: Request,
    gateway_id: Annotated[str | None, Query(max_length=64, description="One building's tenants")] = None,
    status: TenantStatus | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of id, name, permit number or room")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    caller: Caller = Depends(READERS),
) -> TenantList:
    """The register, by id; police searches are audited."""
    query = select(TownTenant)
    if gateway_id is not None:
        query = query.where(TownTenant.gateway_id == gateway_id)
    if status is not None:
        query = query.where(TownTenant.status == status)
    if q:
        columns = (TownTenant.id, TownTenant.name, TownTenant.permit_number, TownTenant.room)
        query = query.where(or_(*(col.icontains(q, autoescape=True) for col in columns)))
    with searching(request), request.app.state.ctx.sessions() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(TownTenant.id).limit(limit).offset(offset)).all()
        found = TenantList(items=tenants_out(s, rows), total=total)
    filters = {"gateway_id": gateway_id, "status": status, "q": q, "limit": limit, "offset": offset}
    _police_read(request, caller, "tenants.search", filters, len(found.items))
    return found


@router.get("/tenants/{tenant_id}", response_model=TenantOut)
def read_tenant(tenant_id: str, request: Request, caller: Caller = Depends(READERS)) -> TenantOut:
    with request.app.state.ctx.sessions() as s:
        try:
            found = _one(s, tenant_id)
        except RegisterError as exc:
            _police_read(request, caller, "tenants.read", {"id": tenant_id}, 0)
            raise register_error(exc) from None
    _police_read(request, caller, "tenants.read", {"id": tenant_id}, 1)
    return found


@router.patch("/tenants/{tenant_id}", response_model=TenantOut)
def update_tenant(tenant_id: str, body: TownTenantPatch, request: Request, caller: Caller = Depends(ADMIN)
                  ) -> TenantOut:  # fmt: skip
    """Change fields; a new `gateway_id` moves the tenant to that building (the old one forgets them)."""
    changes = body.model_dump(exclude_unset=True)
    if "permit_number" in changes:
        changes["permit"] = changes.pop("permit_number")
    with changing(request) as s:
        register.update_tenant(s, caller.name, tenant_id, route="PATCH /tenants/{id}", **changes)
        out = _one(s, tenant_id)
    return out


def _status_route(action: str, status: str) -> None:
    @router.post(f"/tenants/{{tenant_id}}/{action}", response_model=TenantOut, name=f"{action}_tenant")
    def change(
        tenant_id: str, request: Request, body: ReasonIn | None = None, caller: Caller = Depends(ADMIN)
    ) -> TenantOut:
        """The body (`{"reason": "…"}`, at most 200 characters) is optional; the reason is audited."""
        with changing(request) as s:
            register.set_status(s, caller.name, tenant_id, status, reason=body.reason if body else None,
                                route=f"POST /tenants/{{id}}/{action}")  # fmt: skip
            out = _one(s, tenant_id)
        return out


_status_route("suspend", "suspended")
_status_route("revoke", "revoked")
_status_route("activate", "active")


@router.delete("/tenants/{tenant_id}", status_code=204, response_class=Response)
def delete_tenant(
    tenant_id: str, request: Request, body: ReasonIn | None = None, caller: Caller = Depends(ADMIN)
) -> Response:
    """The tenant, their cards and templates leave the register and their building; their entries stay."""
    with changing(request) as s:
        register.delete_tenant(s, caller.name, tenant_id, reason=body.reason if body else None,
                               route="DELETE /tenants/{id}")  # fmt: skip
    return Response(status_code=204)


# --- cards ------------------------------------------------------------------------------------------------


@router.post("/tenants/{tenant_id}/cards", status_code=201, response_model=TenantOut, tags=["cards"])
def bind_card(tenant_id: str, body: CardIn, request: Request, caller: Caller = Depends(ADMIN)) -> TenantOut:
    with changing(request) as s:
        register.add_card(s, caller.name, tenant_id, body.number, route="POST /tenants/{id}/cards")
        out = _one(s, tenant_id)
    return out


@router.delete("/cards/{number}", status_code=204, response_class=Response, tags=["cards"])
def unbind_card(number: int, request: Request, caller: Caller = Depends(ADMIN)) -> Response:
    if not 0 <= number <= 0xFFFFFFFF:
        raise ApiError(422, "invalid_request", "a card number is a 32-bit unsigned integer")
    with changing(request) as s:
        register.remove_card(s, caller.name, number, route="DELETE /cards/{number}")
    return Response(status_code=204)


# --- faces ------------------------------------------------------------------------------------------------


async def assess(request: Request, photos: list[UploadFile]) -> tuple[list[PhotoResult], list[PhotoVerdictOut]]:
    """Every photo checked and encoded in the worker process (never more than the limit read into memory)."""
    items = [(p.filename or "photo", await p.read(MAX_PHOTO_BYTES + 1)) for p in photos]
    ctx = request.app.state.ctx
    results = await ctx.photos.assess(items, ctx.recognition)
    verdicts = [PhotoVerdictOut(name=r.name, ok=r.verdict.ok, reason=r.verdict.reason, detail=r.verdict.detail)
                for r in results]  # fmt: skip
    return results, verdicts


def _photo_count(photos: list[UploadFile]) -> None:
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise ApiError(422, "invalid_request", f"give 1 to {MAX_PHOTOS} photos, not {len(photos)}")


@router.post("/tenants/{tenant_id}/faces", status_code=201, response_model=FacesOut, tags=["faces"],
             responses={422: {"description": "a photo failed: every verdict, nothing stored"}})  # fmt: skip
async def upload_faces(
    tenant_id: str,
    request: Request,
    photos: list[UploadFile] = File(...),
    replace: Annotated[bool, Query(description="true: these photos replace the tenant's templates")] = False,
    caller: Caller = Depends(ADMIN),
) -> FacesOut:
    """Templates from 1 to 5 photos, made as the buildings make theirs; every photo must pass, or nothing
    changes. Pushed to the tenant's building (templates, never photos)."""
    _photo_count(photos)
    with request.app.state.ctx.sessions() as s:
        try:
            register.get_tenant(s, tenant_id)
        except RegisterError as exc:
            raise register_error(exc) from None
    results, verdicts = await assess(request, photos)
    if not all(r.verdict.ok for r in results):
        raise ApiError(422, "photo_rejected", "every photo must pass; nothing was stored",
                       {"verdicts": [v.model_dump() for v in verdicts]})  # fmt: skip
    with changing(request) as s:
        stored = register.enrol_assessed(s, caller.name, tenant_id, results, replace=replace,
                                         route="POST /tenants/{id}/faces")  # fmt: skip
    return FacesOut(stored=len(stored), verdicts=verdicts)


@router.delete("/tenants/{tenant_id}/faces", status_code=204, response_class=Response, tags=["faces"])
def delete_faces(tenant_id: str, request: Request, caller: Caller = Depends(ADMIN)) -> Response:
    with changing(request) as s:
        register.delete_templates(s, caller.name, tenant_id, route="DELETE /tenants/{id}/faces")
    return Response(status_code=204)


# --- enrolment in one step --------------------------------------------------------------------------------


def _problems_of(exc: ValidationError, prefix: str) -> list[dict[str, Any]]:
    return [{"field": prefix + ".".join(map(str, e["loc"])), "code": "invalid", "message": e["msg"]}
            for e in exc.errors()]  # fmt: skip


def _conflicts(s: Session, new: TownTenantIn, numbers: list[int]) -> list[dict[str, Any]]:
    found = []
    if s.get(TownTenant, new.id) is not None:
        found.append({"field": "tenant.id", "code": "conflict", "message": f"tenant {new.id!r} exists"})
    clash = s.scalar(select(TownTenant.id).where(TownTenant.permit_number == new.permit_number))
    if clash is not None:
        found.append({"field": "tenant.permit_number", "code": "conflict",
                      "message": f"permit number belongs to tenant {clash!r}"})  # fmt: skip
    for i, number in enumerate(numbers):
        owner = s.scalar(select(TownCard.tenant_id).where(TownCard.number == number))
        if owner is not None:
            found.append({"field": f"cards[{i}]", "code": "conflict",
                          "message": f"card {number} is enrolled for tenant {owner!r}"})  # fmt: skip
    return found


@router.post("/enrolments", status_code=201, response_model=TenantOut,
             responses={422: {"description": "every problem listed; nothing stored"},
                        409: {"description": "conflicts listed"}})  # fmt: skip
async def enrol(
    request: Request,
    tenant: str = Form(
        ..., max_length=4096, description="The tenant as JSON: id, gateway_id, name, permit_number, valid_to, …"
    ),
    cards: str = Form("[]", max_length=1024, description="JSON list of card numbers"),
    photos: list[UploadFile] = File(default=[]),
    caller: Caller = Depends(ADMIN),
) -> TenantOut:
    """Enrol a tenant at their building with cards and face photos, all stored or none (every problem listed
    at once); pushed to the building."""
    new: TownTenantIn | None = None
    problems: list[dict[str, Any]] = []
    try:
        new = TownTenantIn.model_validate_json(tenant)
    except ValidationError as exc:
        problems += _problems_of(exc, "tenant.")
    numbers, card_problems = parse_cards(cards)
    problems += card_problems
    if len(photos) > MAX_PHOTOS:
        problems.append({"field": "photos", "code": "invalid", "message": f"at most {MAX_PHOTOS} photos"})
    conflicts: list[dict[str, Any]] = []
    if new is not None:
        with request.app.state.ctx.sessions() as s:
            conflicts = _conflicts(s, new, numbers)
    verdicts: list[PhotoVerdictOut] = []
    results: list[PhotoResult] = []
    if photos and not problems:
        results, verdicts = await assess(request, photos)
        problems += [{"field": f"photos[{i}]", "code": v.reason, "message": v.detail}
                     for i, v in enumerate(verdicts) if not v.ok]  # fmt: skip
    if problems or conflicts:
        status, code = (409, "conflict") if conflicts and not problems else (422, "invalid_request")
        raise ApiError(status, code, "nothing was stored: every problem is listed",
                       {"problems": problems + conflicts, "verdicts": [v.model_dump() for v in verdicts]})  # fmt: skip
    assert new is not None
    with changing(request) as s:
        register.add_tenant(s, caller.name, gateway_id=new.gateway_id, id=new.id, name=new.name,
                            permit=new.permit_number, valid_to=new.valid_to, valid_from=new.valid_from,
                            room=new.room, route="POST /enrolments")  # fmt: skip
        for number in numbers:
            register.add_card(s, caller.name, new.id, number, route="POST /enrolments")
        if results:
            register.enrol_assessed(s, caller.name, new.id, results, route="POST /enrolments")
        out = _one(s, new.id)
    return out
