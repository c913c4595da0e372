"""Bearer tokens, roles on every route, and rate-limited failures per client address."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.api.errors import ApiError
from gateway.api.users import find_active_user

bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer <token>`")


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: str
    address: str


class FailureLimiter:
    """At most `limit` failed authentications per address per `window_s`; then 429."""

    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, address: str, now: float) -> deque[float]:
        q = self._failures[address]
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, address: str) -> bool:
        return len(self._recent(address, time.monotonic())) >= self.limit

    def failed(self, address: str) -> None:
        self._recent(address, time.monotonic()).append(time.monotonic())


def authenticated(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
    ctx = request.app.state.ctx
    address = request.client.host if request.client else "unknown"
    if creds is None or not creds.credentials:
        raise ApiError(401, "unauthenticated", "an API token is required")
    if ctx.limiter.blocked(address):  # guessing tokens: stop answering for a while
        raise ApiError(429, "too_many_failures", "too many failed sign-ins from this address; wait a minute")
    with ctx.sessions() as s:
        user = find_active_user(s, creds.credentials)
        caller = None if user is None else Caller(user.name, user.role, address)
    if caller is None:
        ctx.limiter.failed(address)
        raise ApiError(401, "unauthenticated", "unknown, revoked or rotated token")
    return caller


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency admitting only `roles` (DESIGN §8); the roles show in OpenAPI."""

    def dependency(caller: Caller = Depends(authenticated)) -> Caller:
        if caller.role not in roles:
            raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}")
        return caller

    dependency.__name__ = "require_" + "_".join(roles)
    return dependency
