"""Tenants, cards, faces and the watch list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gateway.api.auth import Caller, require
from gateway.api.errors import ApiError
from gateway.api.limits import searching
from gateway.api.schemas import (
    CardIn,
    FacesOut,
    PhotoVerdictOut,
    ReasonIn,
    TenantIn,
    TenantList,
    TenantOut,
    TenantPatch,
    TenantStatus,
)
from gateway.enrolment import MAX_PHOTOS, enrol_faces
from gateway.store.audit import audit
from gateway.store.models import Card, FaceTemplate, Tenant
from gateway.store.roster import (
    NewTenant,
    RosterError,
    add_card,
    add_tenant,
    delete_face_templates,
    get_tenant,
    mark_changed,
    remove_card,
    set_status,
    set_watchlist,
)
from gateway.store.roster_events import queue_roster_change

router = APIRouter(tags=["tenants"])
ADMIN = require("admin")
READERS = require("admin", "police")
POLICE = require("police")
MAX_PHOTO_BYTES = 10_000_000


def session_of(request: Request) -> Session:
    return request.app.state.ctx.sessions()


def send_up(s: Session, request: Request, tenant_id: str, change: str, caller: Caller) -> None:
    """The change leaves for the town through the outbox, in this transaction (DESIGN §6.1 "Up")."""
    queue_roster_change(s, request.app.state.ctx.cfg.gateway_id, tenant_id, change, caller.name)


def tenant_out(s: Session, t: Tenant) -> TenantOut:
    cards = list(s.scalars(select(Card.number).where(Card.tenant_id == t.id).order_by(Card.number)))
    faces = s.scalar(select(func.count()).select_from(FaceTemplate).where(FaceTemplate.tenant_id == t.id)) or 0
    return TenantOut(
        id=t.id, name=t.name, permit_number=t.permit_number, valid_from=t.valid_from, valid_to=t.valid_to,
        room=t.room, status=t.status, watchlist=t.watchlist, cards=cards, face_templates=faces,
        created_at=t.created_at, updated_at=t.updated_at,
    )  # fmt: skip


def _roster_error(exc: RosterError) -> ApiError:
    text = str(exc)
    if text.startswith("unknown tenant") or "not enrolled" in text:
        return ApiError(404, "not_found", text)
    if "already" in text:
        return ApiError(409, "conflict", text)
    return ApiError(422, "invalid_request", text)


@router.post("/tenants", status_code=201, response_model=TenantOut)
def create_tenant(body: TenantIn, request: Request, caller: Caller = Depends(ADMIN)) -> TenantOut:
    with session_of(request) as s, s.begin():
        try:
            t = add_tenant(s, NewTenant(body.id, body.name, body.permit_number, body.valid_to, body.valid_from,
                                        body.room))  # fmt: skip
        except RosterError as exc:
            raise _roster_error(exc) from None
        audit(s, caller.name, "tenant.create", {"tenant_id": body.id}, route="POST /tenants")
        send_up(s, request, body.id, "tenant.create", caller)
        return tenant_out(s, t)


@router.get("/tenants", response_model=TenantList)
def list_tenants(
    request: Request,
    status: TenantStatus | None = None,
    watchlist: Annotated[bool | None, Query(description="true: only tenants on the watch list")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of id, name, permit number or room")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    caller: Caller = Depends(READERS),
) -> TenantList:
    query = select(Tenant)
    if status is not None:
        query = query.where(Tenant.status == status)
    if watchlist is not None:
        query = query.where(Tenant.watchlist.is_(watchlist))
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(*(col.like(like, escape="\\") for col in (Tenant.id, Tenant.name, Tenant.permit_number, Tenant.room)))
        )
    with searching(request), session_of(request) as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(Tenant.id).limit(limit).offset(offset)).all()
        found = TenantList(items=[tenant_out(s, t) for t in rows], total=total)
    filters = {"status": status, "watchlist": watchlist, "q": q, "limit": limit, "offset": offset}
    _audit_police(request, caller, "tenants.search", filters, len(found.items))
    return found


@router.get("/tenants/{tenant_id}", response_model=TenantOut)
def read_tenant(tenant_id: str, request: Request, caller: Caller = Depends(READERS)) -> TenantOut:
    with session_of(request) as s:
        try:
            found = tenant_out(s, get_tenant(s, tenant_id))
        except RosterError as exc:
            _audit_police(request, caller, "tenants.read", {"id": tenant_id}, 0)
            raise _roster_error(exc) from None
    _audit_police(request, caller, "tenants.read", {"id": tenant_id}, 1)
    return found


def _audit_police(request: Request, caller: Caller, action: str, filters: dict[str, object], rows: int) -> None:
    """Police look-ups of people are audited like entry reads; the admin's own roster work is not."""
    if caller.role != "police":
        return
    shown = {k: v for k, v in filters.items() if v is not None}
    with session_of(request) as s, s.begin():
        audit(s, caller.name, action, {"filters": shown, "address": caller.address}, route=request.url.path,
              rows=rows)  # fmt: skip


@router.patch("/tenants/{tenant_id}", response_model=TenantOut)
def update_tenant(tenant_id: str, body: TenantPatch, request: Request, caller: Caller = Depends(ADMIN)) -> TenantOut:
    changes = body.model_dump(exclude_unset=True)
    with session_of(request) as s, s.begin():
        try:
            t = get_tenant(s, tenant_id)
        except RosterError as exc:
            raise _roster_error(exc) from None
        nulled = [key for key in ("name", "permit_number", "valid_to") if key in changes and changes[key] is None]
        if nulled:
            raise ApiError(422, "invalid_request", f"{', '.join(nulled)} cannot be null")
        valid_from = changes.get("valid_from", t.valid_from)
        valid_to = changes.get("valid_to", t.valid_to)
        if valid_from is not None and valid_from > valid_to:
            raise ApiError(422, "invalid_request", f"valid_from {valid_from} is after valid_to {valid_to}")
        permit = changes.get("permit_number")
        if permit and s.scalar(select(Tenant.id).where(Tenant.permit_number == permit, Tenant.id != tenant_id)):
            raise ApiError(409, "conflict", f"permit number {permit!r} belongs to another tenant")
        for key, value in changes.items():
            setattr(t, key, value)
        mark_changed(s)
        audit(s, caller.name, "tenant.update", {"tenant_id": tenant_id, "fields": sorted(changes)},
              route="PATCH /tenants/{id}")  # fmt: skip
        send_up(s, request, tenant_id, "tenant.update", caller)
        return tenant_out(s, t)


def _with_reason(details: dict[str, object], body: ReasonIn | None) -> dict[str, object]:
    """Audit details plus the caller's reason, when one was given (`{"reason": "…"}`, optional)."""
    return details | ({"reason": body.reason} if body is not None and body.reason else {})


def _status_route(action: str, status: str) -> None:
    @router.post(f"/tenants/{{tenant_id}}/{action}", response_model=TenantOut, name=f"{action}_tenant")
    def change(
        tenant_id: str, request: Request, body: ReasonIn | None = None, caller: Caller = Depends(ADMIN)
    ) -> TenantOut:
        """The body (`{"reason": "…"}`, at most 200 characters) is optional; the reason is audited."""
        details = _with_reason({"tenant_id": tenant_id}, body)
        with session_of(request) as s, s.begin():
            try:
                t = set_status(s, tenant_id, status)
            except RosterError as exc:
                raise _roster_error(exc) from None
            audit(s, caller.name, f"tenant.{action}", details, route=f"POST /tenants/{{id}}/{action}")
            send_up(s, request, tenant_id, f"tenant.{action}", caller)
            return tenant_out(s, t)


_status_route("suspend", "suspended")
_status_route("revoke", "revoked")
_status_route("activate", "active")


@router.delete("/tenants/{tenant_id}", status_code=204, response_class=Response)
def delete_tenant(
    tenant_id: str, request: Request, body: ReasonIn | None = None, caller: Caller = Depends(ADMIN)
) -> Response:
    """Removes the tenant, their cards and face templates; their entries stay (evidence). Reason optional."""
    with session_of(request) as s, s.begin():
        try:
            t = get_tenant(s, tenant_id)
        except RosterError as exc:
            raise _roster_error(exc) from None
        s.delete(t)
        mark_changed(s)
        details = _with_reason({"tenant_id": tenant_id}, body)
        audit(s, caller.name, "tenant.delete", details, route="DELETE /tenants/{id}")
        send_up(s, request, tenant_id, "tenant.delete", caller)
    return Response(status_code=204)


@router.post("/tenants/{tenant_id}/cards", status_code=201, response_model=TenantOut, tags=["cards"])
def bind_card(tenant_id: str, body: CardIn, request: Request, caller: Caller = Depends(ADMIN)) -> TenantOut:
    with session_of(request) as s, s.begin():
        try:
            add_card(s, tenant_id, body.number)
            t = get_tenant(s, tenant_id)
        except RosterError as exc:
            raise _roster_error(exc) from None
        audit(
            s, caller.name, "card.bind", {"tenant_id": tenant_id, "card": body.number}, route="POST /tenants/{id}/cards"
        )
        send_up(s, request, tenant_id, "card.bind", caller)
        return tenant_out(s, t)


@router.delete("/cards/{number}", status_code=204, response_class=Response, tags=["cards"])
def unbind_card(number: int, request: Request, caller: Caller = Depends(ADMIN)) -> Response:
    if not 0 <= number <= 0xFFFFFFFF:
        raise ApiError(422, "invalid_request", "a card number is a 32-bit unsigned integer")
    with session_of(request) as s, s.begin():
        try:
            owner = remove_card(s, number)
        except RosterError as exc:
            raise _roster_error(exc) from None
        audit(s, caller.name, "card.unbind", {"card": number}, route="DELETE /cards/{number}")
        send_up(s, request, owner, "card.unbind", caller)
    return Response(status_code=204)


@router.post(
    "/tenants/{tenant_id}/faces",
    status_code=201,
    response_model=FacesOut,
    tags=["faces"],
    responses={422: {"description": "a photo failed: every verdict, nothing stored"}},
)
async def upload_faces(
    tenant_id: str,
    request: Request,
    photos: list[UploadFile] = File(...),
    replace: Annotated[bool, Query(description="true: these photos replace the tenant's templates")] = False,
    caller: Caller = Depends(ADMIN),
) -> FacesOut:
    """Add face templates from 1 to 5 photos; with `replace=true` they replace the tenant's others.

    Every photo must pass, or nothing changes; a replacement is one transaction and one roster event.
    """
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise ApiError(422, "invalid_request", f"give 1 to {MAX_PHOTOS} photos, not {len(photos)}")
    with session_of(request) as s:
        try:
            get_tenant(s, tenant_id)
        except RosterError as exc:
            raise _roster_error(exc) from None
    items = []
    for photo in photos:
        data = await photo.read(MAX_PHOTO_BYTES + 1)  # never more than the limit in memory
        items.append((photo.filename or "photo", data))
    ctx = request.app.state.ctx
    results = await ctx.photos.assess(items, ctx.cfg.recognition)  # in a worker process, one upload at a time
    verdicts = [PhotoVerdictOut(name=r.name, ok=r.verdict.ok, reason=r.verdict.reason, detail=r.verdict.detail)
                for r in results]  # fmt: skip
    if not all(r.verdict.ok for r in results):
        raise ApiError(422, "photo_rejected", "every photo must pass; nothing was stored",
                       {"verdicts": [v.model_dump() for v in verdicts]})  # fmt: skip
    with session_of(request) as s, s.begin():
        try:
            stored = enrol_faces(s, tenant_id, results, caller.name, replace=replace)
        except RosterError as exc:  # deleted while its photos were checked
            raise _roster_error(exc) from None
        send_up(s, request, tenant_id, "face.replace" if replace else "face.enrol", caller)
    return FacesOut(stored=stored, verdicts=verdicts)


@router.delete("/tenants/{tenant_id}/faces", status_code=204, response_class=Response, tags=["faces"])
def delete_faces(tenant_id: str, request: Request, caller: Caller = Depends(ADMIN)) -> Response:
    with session_of(request) as s, s.begin():
        try:
            removed = delete_face_templates(s, tenant_id)
        except RosterError as exc:
            raise _roster_error(exc) from None
        audit(s, caller.name, "face.delete", {"tenant_id": tenant_id, "templates": removed},
              route="DELETE /tenants/{id}/faces")  # fmt: skip
        send_up(s, request, tenant_id, "face.delete", caller)
    return Response(status_code=204)


def _watch(tenant_id: str, request: Request, caller: Caller, on: bool, body: ReasonIn | None) -> TenantOut:
    with session_of(request) as s, s.begin():
        try:
            t = set_watchlist(s, tenant_id, on)
        except RosterError as exc:
            raise _roster_error(exc) from None
        details = _with_reason({"tenant_id": tenant_id}, body)
        audit(s, caller.name, "watchlist.set" if on else "watchlist.clear", details,
              route=f"{'PUT' if on else 'DELETE'} /tenants/{{id}}/watchlist")  # fmt: skip
        send_up(s, request, tenant_id, "watchlist.set" if on else "watchlist.clear", caller)
        return tenant_out(s, t)


@router.put("/tenants/{tenant_id}/watchlist", response_model=TenantOut, tags=["watch list"])
def watch(
    tenant_id: str, request: Request, body: ReasonIn | None = None, caller: Caller = Depends(POLICE)
) -> TenantOut:
    """The body (`{"reason": "…"}`) is optional; the reason is audited."""
    return _watch(tenant_id, request, caller, True, body)


@router.delete("/tenants/{tenant_id}/watchlist", response_model=TenantOut, tags=["watch list"])
def unwatch(
    tenant_id: str, request: Request, body: ReasonIn | None = None, caller: Caller = Depends(POLICE)
) -> TenantOut:
    """The body (`{"reason": "…"}`) is optional; the reason is audited."""
    return _watch(tenant_id, request, caller, False, body)
