"""uvicorn for the API process, with the limits of DESIGN §3 and §8 (and HTTPS when it has a certificate)."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from config.models import ApiConfig
from gateway.api.tls import server_context

MAX_CONNECTIONS = 256  # beyond this uvicorn answers 503 at once instead of queueing without bound
MAX_HEADER_BYTES = 16 * 1024


def make_server(app: FastAPI, api: ApiConfig) -> uvicorn.Server:
    """The API's uvicorn; with api.tls_cert_file, HTTPS only (TLS 1.2+). Raises gateway.api.tls.ApiTlsError
    at once when the certificate or key cannot be used (not later, inside the server's loop)."""
    trusted = list(api.trusted_proxies)
    tls: Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext] | None = None
    if api.tls_cert_file is not None:
        context = server_context(api)
        tls = lambda _config, _default: context  # noqa: E731  (ours, not uvicorn's: it sets no minimum version)
    config = uvicorn.Config(
        app,
        host=api.host,
        port=api.port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        server_header=False,
        # The client address of a request comes from X-Forwarded-For only when the peer is a configured proxy.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        limit_concurrency=MAX_CONNECTIONS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=3,
        ssl_context_factory=tls,
    )
    return uvicorn.Server(config)
