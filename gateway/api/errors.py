"""One error shape for every failure: {"error": {"code", "message"}} (DESIGN §8)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.api.headers import security_headers
from gateway.control import ControlError


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, extra: dict | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra or {}
        self.headers = headers or {}


def error_body(code: str, message: str, **extra: object) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "bad request"),
        (401, "no token, or an unknown, revoked or rotated token"),
        (403, "the token's role may not do this"),
        (404, "no such resource"),
        (409, "conflicts with the current state"),
        (422, "invalid input"),
        (429, "too many failed sign-ins from this address, or too many exports or searches at once (Retry-After)"),
    )
}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        headers.update(exc.headers)
        return JSONResponse(error_body(exc.code, exc.message, **exc.extra), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return JSONResponse(error_body("invalid_request", "; ".join(problems)[:2000]), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(ControlError)
    async def doors_unreachable(request: Request, exc: ControlError) -> JSONResponse:
        return JSONResponse(error_body("unavailable", f"the door process does not answer ({exc}); try again"),
                            status_code=503, headers={"Retry-After": "2"})  # fmt: skip

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        # Starlette sends this from outside every middleware, SecurityHeaders too.
        return JSONResponse(error_body("internal", "internal error; see the gateway log"), status_code=500,
                            headers=security_headers(request.url.path))  # fmt: skip
