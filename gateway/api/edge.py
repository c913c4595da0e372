"""Limits at the edge: a request body costs nothing until its sender is known and its size allowed.

FastAPI reads (and Starlette spools) a body before any route dependency runs,
so the token check of `auth.require` alone would come after an anonymous
300 MB upload. This ASGI middleware runs first: a request that announces a
body must carry a valid token (401/429 otherwise) and a Content-Length within
the route's limit (413 otherwise; 411 without a length). uvicorn then never
lets the body exceed the length it announced.
"""

from __future__ import annotations

import re

import anyio
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.auth import CSRF_HEADER, SESSION_COOKIE, presented_token, resolve_caller
from gateway.api.errors import ApiError, error_body
from gateway.api.routes_roster import MAX_PHOTO_BYTES
from gateway.enrolment import MAX_PHOTOS

JSON_BODY_LIMIT = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries around the photos
PHOTO_UPLOAD_LIMIT = MAX_PHOTOS * MAX_PHOTO_BYTES + MULTIPART_OVERHEAD
PHOTO_UPLOAD = re.compile(r"^/api/v1/(tenants/[^/]+/faces|enrolments)/?$")
SIGN_IN = "/api/v1/session"  # the one body sent before its sender is known: the token itself
SIGN_IN_LIMIT = 4096  # a 200-character token, every character escaped as \uXXXX, fits


def body_limit(method: str, path: str, photo_upload: re.Pattern[str] = PHOTO_UPLOAD) -> int:
    """The largest body a route takes: photos on the face upload, a small JSON document elsewhere."""
    if method == "POST" and photo_upload.match(path):
        return PHOTO_UPLOAD_LIMIT
    return JSON_BODY_LIMIT


class BodyGuard:
    """`photo_upload`: the paths that take photos (the town's API names its own)."""

    def __init__(self, app: ASGIApp, photo_upload: re.Pattern[str] = PHOTO_UPLOAD) -> None:
        self.app = app
        self.photo_upload = photo_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await _refuse(scope, receive, send, ApiError(411, "length_required", "send a Content-Length"))
            return
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            await _refuse(scope, receive, send, ApiError(400, "bad_request", "Content-Length is not a number"))
            return
        if length <= 0:
            await self.app(scope, receive, send)
            return
        if scope["path"] == SIGN_IN:
            if length > SIGN_IN_LIMIT:
                too_big = ApiError(413, "too_large", f"a sign-in is at most {SIGN_IN_LIMIT} bytes")
                await _refuse(scope, receive, send, too_big)
            else:
                await self.app(scope, receive, send)  # the route checks the token, with the failure limiter
            return
        address = scope["client"][0] if scope.get("client") else "unknown"
        ctx = scope["app"].state.ctx  # Starlette puts the app in the scope before its middleware runs
        try:
            token = presented_token(scope["method"], headers.get("authorization"),
                                    cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE),
                                    headers.get(CSRF_HEADER))  # fmt: skip
            caller = await anyio.to_thread.run_sync(resolve_caller, ctx, token, address)
            limit = body_limit(scope["method"], scope["path"], self.photo_upload)
            if length > limit:
                raise ApiError(413, "too_large", f"this request takes at most {limit} bytes, not {length}")
        except ApiError as exc:
            await _refuse(scope, receive, send, exc)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: ApiError) -> None:
    extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    # The body stays unread: uvicorn closes the connection after this answer.
    response = JSONResponse(error_body(exc.code, exc.message), status_code=exc.status,
                            headers={"Connection": "close", **extra})  # fmt: skip
    await response(scope, receive, send)
