"""The FastAPI application: /api/v1, OpenAPI at /api/v1/openapi.json, the web page at /."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gateway import __version__
from gateway.api import errors
from gateway.api.context import ApiContext
from gateway.api.edge import BodyGuard
from gateway.api.headers import SecurityHeaders
from gateway.api.routes_admin import metrics_router
from gateway.api.routes_admin import router as admin_router
from gateway.api.routes_enrolment import router as enrolment_router
from gateway.api.routes_records import router as records_router
from gateway.api.routes_roster import router as roster_router
from gateway.api.routes_session import router as session_router

PREFIX = "/api/v1"
WEB = Path(__file__).resolve().parent.parent / "web"


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="accessgw",
        version=__version__,
        description="Rental-building access gateway: tenants, cards, faces, entries, alerts, audit.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        responses=errors.ERROR_RESPONSES,
    )
    app.state.ctx = ctx
    errors.install(app)
    app.add_middleware(BodyGuard)  # no body is read before its sender is known
    app.add_middleware(SecurityHeaders)  # added last = outermost: BodyGuard's 401/413 get the headers too
    app.include_router(session_router, prefix=PREFIX)
    app.include_router(admin_router, prefix=PREFIX)
    app.include_router(roster_router, prefix=PREFIX)
    app.include_router(enrolment_router, prefix=PREFIX)
    app.include_router(records_router, prefix=PREFIX)
    app.include_router(metrics_router)
    if WEB.is_dir():
        app.mount("/", StaticFiles(directory=WEB, html=True), name="web")
    return app
