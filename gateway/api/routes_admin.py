"""Users and tokens, doors, health and readiness, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.auth import Caller, authenticated, require
from gateway.api.errors import ApiError
from gateway.api.schemas import DoorOut, Me, OpenResult, ReasonIn, TokenOut, UserIn, UserOut
from gateway.api.users import UserError, create_user, revoke_user, rotate_token
from gateway.clock import zone_name
from gateway.store.audit import audit
from gateway.store.models import ApiUser

router = APIRouter()
# Users and tokens, a router of their own: the town's API (town.api.app) serves the same routes.
users_router = APIRouter(tags=["users"])
ADMIN = require("admin")


def _session(request: Request) -> Session:
    return request.app.state.ctx.sessions()


@router.get("/health", tags=["health"])
def health() -> dict[str, str]:
    """Liveness: the API answers. No token needed."""
    return {"status": "ok"}


@router.get("/ready", tags=["health"], responses={503: {"description": "a door's reader or I/O module is down"}})
def ready(request: Request, response: Response) -> dict:
    """Readiness of the store, broker, readers, I/O modules and cameras. No token needed."""
    report = request.app.state.ctx.hooks.readiness()
    if not report.get("ready", False):
        response.status_code = 503
    return report


@router.get("/me", response_model=Me, tags=["users"])
def me(request: Request, caller: Caller = Depends(authenticated)) -> Me:
    """Who this token belongs to (the web page's sign-in), and the gateway's zone to show times in."""
    cfg = request.app.state.ctx.cfg
    return Me(name=caller.name, role=caller.role, timezone=zone_name(cfg), gateway_id=cfg.gateway_id)


@users_router.post("/users", status_code=201, response_model=TokenOut)
def add_user(body: UserIn, request: Request, caller: Caller = Depends(ADMIN)) -> TokenOut:
    with _session(request) as s, s.begin():
        try:
            token = create_user(s, body.name, body.role, caller.name)
        except UserError as exc:
            raise ApiError(409 if "exists" in str(exc) else 422, "conflict" if "exists" in str(exc) else
                           "invalid_request", str(exc)) from None  # fmt: skip
    return TokenOut(name=body.name, role=body.role, token=token)


@users_router.get("/users", response_model=list[UserOut])
def list_users(request: Request, caller: Caller = Depends(ADMIN)) -> list[UserOut]:
    with _session(request) as s:
        users = s.scalars(select(ApiUser).order_by(ApiUser.name))
        return [
            UserOut(name=u.name, role=u.role, created_at=u.created_at, rotated_at=u.rotated_at, revoked_at=u.revoked_at)
            for u in users
        ]


@users_router.delete("/users/{name}", status_code=204, response_class=Response)
def revoke(name: str, request: Request, caller: Caller = Depends(ADMIN)) -> Response:
    with _session(request) as s, s.begin():
        try:
            revoke_user(s, name, caller.name)
        except UserError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
    return Response(status_code=204)


@users_router.post("/users/{name}/rotate", response_model=TokenOut)
def rotate(name: str, request: Request, caller: Caller = Depends(ADMIN)) -> TokenOut:
    with _session(request) as s, s.begin():
        try:
            token = rotate_token(s, name, caller.name)
        except UserError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        role = s.get(ApiUser, name).role  # type: ignore[union-attr]
    return TokenOut(name=name, role=role, token=token)


router.include_router(users_router)


@router.get("/doors", response_model=list[DoorOut], tags=["doors"])
def doors(request: Request, caller: Caller = Depends(require("admin", "police", "operator"))) -> list[DoorOut]:
    return [DoorOut(**d) for d in request.app.state.ctx.hooks.door_states()]


@router.get("/doors/{door_id}", response_model=DoorOut, tags=["doors"])
def door(door_id: str, request: Request, caller: Caller = Depends(require("admin", "police", "operator"))) -> DoorOut:
    for d in request.app.state.ctx.hooks.door_states():
        if d["id"] == door_id:
            return DoorOut(**d)
    raise ApiError(404, "not_found", f"no door {door_id!r}")


@router.post("/doors/{door_id}/open", response_model=OpenResult, tags=["doors"])
def open_door(
    door_id: str, request: Request, body: ReasonIn | None = None, caller: Caller = Depends(require("operator"))
) -> OpenResult:
    """Pulse the door's lock. The body (`{"reason": "…"}`) is optional; the reason goes into the audit row."""
    ctx = request.app.state.ctx
    if door_id not in {d["id"] for d in ctx.hooks.door_states()}:
        raise ApiError(404, "not_found", f"no door {door_id!r}")
    details = {"door": door_id, "address": caller.address}
    if body is not None and body.reason:
        details["reason"] = body.reason
    with _session(request) as s, s.begin():
        audit(s, caller.name, "door.open", details, route="POST /doors/{id}/open")
    ctx.hooks.open_door(door_id, caller.name)
    return OpenResult(door=door_id, status="opened")


metrics_router = APIRouter()


@metrics_router.get("/metrics", tags=["health"], response_class=Response)
def metrics(request: Request, caller: Caller = Depends(require("admin", "auditor", "operator"))) -> Response:
    """Prometheus text format: the door process's metrics."""
    return Response(request.app.state.ctx.hooks.metrics_text(), media_type=CONTENT_TYPE_LATEST)
