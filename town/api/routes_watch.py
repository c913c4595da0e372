"""The town's watch list (police): persons of interest, tenants or not, each with face templates, pushed to
every gateway. Listing it is a police read (audited); every change is audited with its reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from sqlalchemy import func, or_, select

from gateway.api.auth import Caller, require
from gateway.api.errors import ApiError
from gateway.api.limits import searching
from gateway.api.routes_records import audit_read
from gateway.api.schemas import ReasonIn
from gateway.enrolment import MAX_PHOTOS
from gateway.inputs import check_text
from town import register
from town.api.routes_register import assess, changing, register_error, tenants_out
from town.api.schemas import TenantOut, WatchList, WatchOut
from town.register import RegisterError
from town.store.models import TownTemplate, WatchEntry, WatchVector

router = APIRouter(tags=["watch list"])
POLICE = require("police")


def _out(s: object, rows: list[WatchEntry]) -> list[WatchOut]:
    ids = [w.id for w in rows]
    counts = dict(s.execute(select(WatchVector.watch_id, func.count()).where(WatchVector.watch_id.in_(ids))  # type: ignore[attr-defined]
                            .group_by(WatchVector.watch_id)).all()) if ids else {}  # fmt: skip
    return [WatchOut(id=w.id, name=w.name, note=w.note, tenant_id=w.tenant_id, templates=counts.get(w.id, 0),
                     created_by=w.created_by, created_at=w.created_at) for w in rows]  # fmt: skip


@router.get("/watch", response_model=WatchList)
def list_watch(
    request: Request,
    q: Annotated[str | None, Query(max_length=100, description="Part of the name, note or tenant id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    caller: Caller = Depends(POLICE),
) -> WatchList:
    """The watch list, newest first (audited)."""
    query = select(WatchEntry)
    if q:
        query = query.where(or_(*(col.icontains(q, autoescape=True) for col in
                                  (WatchEntry.name, WatchEntry.note, WatchEntry.tenant_id))))  # fmt: skip
    with searching(request), request.app.state.ctx.sessions() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(s.scalars(query.order_by(WatchEntry.created_at.desc(), WatchEntry.id.desc())
                              .limit(limit).offset(offset)))  # fmt: skip
        found = WatchList(items=_out(s, rows), total=total)
    audit_read(request, caller, "watch.search", {"q": q, "limit": limit, "offset": offset}, len(found.items))
    return found


def _text(value: str | None, what: str, longest: int) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        return check_text(value.strip()[:longest], what)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None


@router.post("/watch", status_code=201, response_model=WatchOut,
             responses={422: {"description": "a photo failed (every verdict), or no face to watch for"}})  # fmt: skip
async def add_watch(
    request: Request,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    note: Annotated[str | None, Form(max_length=1000)] = None,
    reason: Annotated[str | None, Form(max_length=200, description="Why; kept in the audit log")] = None,
    tenant_id: Annotated[
        str | None,
        Form(max_length=64, description="When the person is a tenant: without photos, their enrolled templates"),
    ] = None,
    photos: list[UploadFile] = File(default=[]),
    caller: Caller = Depends(POLICE),
) -> WatchOut:
    """Put a person on the watch list with 1 to 5 photos, or a tenant with the templates the register holds;
    pushed to every gateway."""
    shown_name = _text(name, "name", 200)
    if shown_name is None:
        raise ApiError(422, "invalid_request", "name: give the person's name")
    note_text, reason_text = _text(note, "note", 1000), _text(reason, "reason", 200)
    tenant = tenant_id.strip() if tenant_id and tenant_id.strip() else None
    if len(photos) > MAX_PHOTOS:
        raise ApiError(422, "invalid_request", f"give at most {MAX_PHOTOS} photos")
    if not photos and tenant is None:
        raise ApiError(422, "invalid_request", "give photos of the person, or the tenant id of an enrolled tenant")
    vectors: list[bytes] = []
    if photos:
        results, verdicts = await assess(request, photos)
        if not all(r.verdict.ok for r in results):
            raise ApiError(422, "photo_rejected", "every photo must pass; nothing was stored",
                           {"verdicts": [v.model_dump() for v in verdicts]})  # fmt: skip
        import numpy as np  # only where faces are enrolled

        vectors = [np.asarray(r.verdict.encoding, dtype="<f4").tobytes() for r in results]
    elif tenant is not None:
        with request.app.state.ctx.sessions() as s:
            try:
                register.get_tenant(s, tenant)
            except RegisterError as exc:
                raise register_error(exc) from None
            if not s.scalar(select(func.count()).select_from(TownTemplate).where(TownTemplate.tenant_id == tenant)):
                raise ApiError(422, "no_faces", f"tenant {tenant!r} has no face templates: give photos")
    with changing(request) as s:
        entry = register.add_watch(s, caller.name, name=shown_name, note=note_text, vectors=vectors,
                                   tenant_id=tenant, reason=reason_text, route="POST /watch")  # fmt: skip
        out = _out(s, [entry])[0]
    return out


@router.delete("/watch/{watch_id}", status_code=204, response_class=Response)
def remove_watch(watch_id: str, request: Request, body: ReasonIn | None = None,
                 caller: Caller = Depends(POLICE)) -> Response:  # fmt: skip
    """Take a person off the watch list (every gateway); the reason (optional) is audited."""
    with changing(request) as s:
        register.remove_watch(s, caller.name, watch_id, reason=body.reason if body else None,
                              route="DELETE /watch/{id}")  # fmt: skip
    return Response(status_code=204)


# --- a tenant on and off the list, as the gateway's page asks for it ----------------------------------------


def _tenant_watch(request: Request, caller: Caller, tenant_id: str, on: bool, body: ReasonIn | None) -> TenantOut:
    reason = body.reason if body else None
    route = f"{'PUT' if on else 'DELETE'} /tenants/{{id}}/watchlist"
    with changing(request) as s:
        tenant = register.get_tenant(s, tenant_id)
        listed = list(s.scalars(select(WatchEntry.id).where(WatchEntry.tenant_id == tenant_id)))
        if on and not listed:
            if not s.scalar(select(func.count()).select_from(TownTemplate).where(TownTemplate.tenant_id == tenant_id)):
                raise ApiError(422, "no_faces", f"tenant {tenant_id!r} has no face templates: add photos first")
            register.add_watch(s, caller.name, name=tenant.name, tenant_id=tenant_id, reason=reason, route=route)
        if not on:
            for watch_id in listed:
                register.remove_watch(s, caller.name, watch_id, reason=reason, route=route)
        out = tenants_out(s, [register.get_tenant(s, tenant_id)])[0]
    return out


@router.put("/tenants/{tenant_id}/watchlist", response_model=TenantOut)
def watch_tenant(tenant_id: str, request: Request, body: ReasonIn | None = None,
                 caller: Caller = Depends(POLICE)) -> TenantOut:  # fmt: skip
    """Put a tenant on the watch list with their enrolled faces (as the gateway's route; a tenant already on it
    stays as is). The reason (optional) is audited."""
    return _tenant_watch(request, caller, tenant_id, True, body)


@router.delete("/tenants/{tenant_id}/watchlist", response_model=TenantOut)
def unwatch_tenant(tenant_id: str, request: Request, body: ReasonIn | None = None,
                   caller: Caller = Depends(POLICE)) -> TenantOut:  # fmt: skip
    """Take a tenant off the watch list (every entry naming them). The reason (optional) is audited."""
    return _tenant_watch(request, caller, tenant_id, False, body)
