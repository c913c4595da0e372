"""Security headers on every response: API JSON, errors, the web page, and answers of other middleware.

A pure ASGI middleware (not BaseHTTPMiddleware): it only edits the
`http.response.start` message, so streamed exports stay streamed. Add it last
in create_app (outermost of ours), so that 401/413/429 answered by other
middleware get the headers too. Starlette answers a 500 from outside every
middleware: gateway.api.errors' crash handler adds `security_headers` itself.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The web page's own <meta> policy (gateway/web/index.html: scripts, styles and images from
# here, blob: for photo previews, fetch to here), plus what only a header can say (frame-ancestors).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# FastAPI's Swagger UI page loads its bundle from a CDN and starts it with an inline script.
DOCS_PATH = "/api/v1/docs"
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; object-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
NO_STORE = ("/api/", "/metrics")  # tokens, personal data, counters: never in a cache


def security_headers(path: str) -> dict[str, str]:
    """The headers a response to `path` carries (also used by the 500 handler, which answers outside us)."""
    headers = {"Content-Security-Policy": DOCS_POLICY if path == DOCS_PATH else PAGE_POLICY, **ALWAYS}
    if path.startswith(NO_STORE):
        headers["Cache-Control"] = "no-store"
    return headers


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ours = security_headers(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                for name, value in ours.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
