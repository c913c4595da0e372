"""The web page's sign-in: its token traded once for an HttpOnly session cookie, and sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from gateway.api.auth import SESSION_COOKIE, client_address, resolve_caller
from gateway.api.schemas import Strict

router = APIRouter(tags=["users"])
# A shift and some: past it the page asks for the token again. Revoking or rotating
# the token ends every session made with it at once (the cookie holds the token).
SESSION_MAX_AGE_S = 12 * 3600
COOKIE_PATH = "/api/"


class SignIn(Strict):
    token: str = Field(min_length=1, max_length=200)


class SignedIn(Strict):
    name: str
    role: str


@router.post("/session", response_model=SignedIn, responses={413: {"description": "a sign-in body over 4 KiB"}})
def sign_in(body: SignIn, request: Request, response: Response) -> SignedIn:
    """Check a token (failures count toward the per-address limit) and set the session cookie."""
    caller = resolve_caller(request.app.state.ctx, body.token, client_address(request))
    response.set_cookie(SESSION_COOKIE, body.token, max_age=SESSION_MAX_AGE_S, path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=over_https(request))  # fmt: skip
    return SignedIn(name=caller.name, role=caller.role)


def over_https(request: Request) -> bool:
    """HTTPS to the browser: the API's own certificate (api.tls_cert_file), whatever a proxy header says,
    or a trusted proxy's X-Forwarded-Proto (uvicorn sets the scheme from it)."""
    return request.app.state.ctx.cfg.api.tls_cert_file is not None or request.url.scheme == "https"


@router.delete("/session", status_code=204, response_class=Response)
def sign_out(request: Request) -> Response:
    """Forget the session cookie in this browser (needs nothing: it only clears the caller's own cookie)."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=over_https(request))  # fmt: skip
    return response
