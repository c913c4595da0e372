"""Bearer tokens, roles on every route, and rate-limited failures per client address."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from gateway.api.errors import ApiError
from gateway.api.users import find_active_user

bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer <token>`")
# The web page signs in once with its token (POST /session) and then holds it only in this
# HttpOnly cookie, out of reach of any script that gets into the page. A change sent with the
# cookie must also carry CSRF_HEADER, which another site's form or fetch cannot set.
SESSION_COOKIE = "accessgw_session"
CSRF_HEADER = "x-accessgw-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: str
    address: str


class FailureLimiter:
    """Counts failed sign-ins per client address; past `limit` in `window_s`, failures answer 429.

    Only failures count, and a valid token is never refused: behind a reverse
    proxy many users may share one address, and one guesser must not lock them out.
    """

    MAX_ADDRESSES = 10_000  # a flood of addresses must not grow memory without bound

    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # sync routes run on a thread pool

    def _recent(self, address: str, now: float) -> deque[float]:
        q = self._failures.get(address)
        if q is None:
            if len(self._failures) >= self.MAX_ADDRESSES:
                self._failures.pop(next(iter(self._failures)))
            q = self._failures[address] = deque()
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, address: str) -> bool:
        with self._lock:
            return len(self._recent(address, time.monotonic())) >= self.limit

    def failed(self, address: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(address, now).append(now)


class CallerSource(Protocol):
    """What finding a caller needs of an API's context (`app.state.ctx`): the gateway's ApiContext, the
    town's TownContext. Users live in its store's api_users table."""

    sessions: sessionmaker[Session]
    limiter: FailureLimiter


def client_address(request: Request) -> str:
    """The peer, or the client a configured trusted proxy names (uvicorn's proxy headers rewrite it)."""
    return request.client.host if request.client else "unknown"


def resolve_caller(ctx: CallerSource, token: str | None, address: str) -> Caller:
    """The caller behind `token`, or ApiError 401 (429 once this address failed too often)."""
    if not token:
        raise ApiError(401, "unauthenticated", "an API token is required")
    with ctx.sessions() as s:
        user = find_active_user(s, token)
        caller = None if user is None else Caller(user.name, user.role, address)
    if caller is not None:
        return caller
    if ctx.limiter.blocked(address):  # guessing tokens: stop answering for a while
        raise ApiError(429, "too_many_failures", "too many failed sign-ins from this address; wait a minute")
    ctx.limiter.failed(address)
    raise ApiError(401, "unauthenticated", "unknown, revoked or rotated token")


def presented_token(method: str, authorization: str | None, cookie_token: str | None, csrf: str | None) -> str | None:
    """The token a request presents: the bearer header first, else the page's session cookie.

    ApiError 403 `csrf` when a change comes with the cookie but without the CSRF header.
    """
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if not cookie_token:
        return None
    if method not in SAFE_METHODS and csrf != "1":
        raise ApiError(403, "csrf", f"a change made with the session cookie needs the header {CSRF_HEADER}: 1")
    return cookie_token


def authenticated(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
    known = getattr(request.state, "caller", None)  # already checked at the edge, before the body was read
    if isinstance(known, Caller):
        return known
    token = presented_token(request.method, request.headers.get("authorization"),
                            request.cookies.get(SESSION_COOKIE), request.headers.get(CSRF_HEADER))  # fmt: skip
    return resolve_caller(request.app.state.ctx, token, client_address(request))


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency admitting only `roles` (DESIGN §8); the roles show in OpenAPI."""

    def dependency(caller: Caller = Depends(authenticated)) -> Caller:
        if caller.role not in roles:
            raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}")
        return caller

    dependency.__name__ = "require_" + "_".join(roles)
    return dependency
