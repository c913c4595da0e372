"""Health, who am I, and the fleet view (every gateway's availability, roster and backlog)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request

from gateway.api.auth import Caller, authenticated, require
from town.api import queries
from town.api.schemas import GatewayOut, Me

router = APIRouter()
FLEET = require("admin", "police", "operator")


@router.get("/health", tags=["health"])
def health() -> dict[str, str]:
    """Liveness: the API answers. No token needed."""
    return {"status": "ok"}


@router.get("/me", response_model=Me, tags=["users"])
def me(request: Request, caller: Caller = Depends(authenticated)) -> Me:
    """Who this token belongs to (the page's sign-in), and the town's zone to show times in."""
    return Me(name=caller.name, role=caller.role, timezone=request.app.state.ctx.cfg.timezone)


@router.get("/gateways", response_model=list[GatewayOut], tags=["fleet"])
def gateways(
    request: Request,
    availability: Literal["online", "offline", "unknown"] | None = None,
    caller: Caller = Depends(FLEET),
) -> list[GatewayOut]:
    """The fleet: each gateway's availability, when it was last heard, the roster version it holds against
    the newest of its log, its outbox depth, open alerts and missing event numbers. No person in it."""
    with request.app.state.ctx.sessions() as s:
        return [GatewayOut(**g) for g in queries.fleet(s, availability=availability)]
