"""The town's FastAPI application: /api/v1 (OpenAPI at /api/v1/openapi.json) and the town's page at /.

Built from the gateway API's building blocks (DESIGN §9): its errors, security headers, the edge guard
that checks a sender before reading a body, the sign-in cookie, users and tokens, exports. The page is
the gateway page's framework and catalogue, served from the gateway's own folder (never copied), plus
the town's shell and views from town/web.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from gateway import __version__
from gateway.api import errors
from gateway.api.edge import BodyGuard
from gateway.api.headers import SecurityHeaders
from gateway.api.routes_admin import users_router
from gateway.api.routes_session import router as session_router
from town.api.context import TownContext
from town.api.routes_fleet import router as fleet_router
from town.api.routes_records import router as records_router
from town.api.routes_register import router as register_router
from town.api.routes_watch import router as watch_router

PREFIX = "/api/v1"
GATEWAY_WEB = Path(__file__).resolve().parents[2] / "gateway" / "web"
TOWN_WEB = Path(__file__).resolve().parents[1] / "web"
# The routes that take photos (a larger body than JSON, checked at the edge).
PHOTO_UPLOAD = re.compile(r"^/api/v1/(tenants/[^/]+/faces|enrolments|watch)/?$")


def create_town_app(ctx: TownContext) -> FastAPI:
    app = FastAPI(
        title="accessgw town",
        version=__version__,
        description="The town platform: every building's entries and alerts, the register of tenants pushed to "
        "their buildings, the watch list, and the fleet of gateways.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        responses=errors.ERROR_RESPONSES,
    )
    app.state.ctx = ctx
    errors.install(app)
    app.add_middleware(BodyGuard, photo_upload=PHOTO_UPLOAD)  # no body is read before its sender is known
    app.add_middleware(SecurityHeaders)  # outermost: the guard's 401/413 get the headers too
    for router in (session_router, users_router, fleet_router, records_router, register_router, watch_router):
        app.include_router(router, prefix=PREFIX)
    mount_page(app)
    return app


def mount_page(app: FastAPI) -> None:
    """/ is the town's page; /js, /i18n and /style.css the gateway page's framework; /town its views."""
    index = TOWN_WEB / "index.html"

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(index, media_type="text/html")

    @app.get("/style.css", include_in_schema=False)
    def style() -> FileResponse:
        return FileResponse(GATEWAY_WEB / "style.css", media_type="text/css")

    app.mount("/js", StaticFiles(directory=GATEWAY_WEB / "js"), name="gateway-js")
    app.mount("/i18n", StaticFiles(directory=GATEWAY_WEB / "i18n"), name="i18n")
    app.mount("/town", StaticFiles(directory=TOWN_WEB), name="town-web")
