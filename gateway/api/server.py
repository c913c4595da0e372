"""uvicorn for the API process, with the limits of DESIGN §3 and §8."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from config.models import ApiConfig

MAX_CONNECTIONS = 256  # beyond this uvicorn answers 503 at once instead of queueing without bound
MAX_HEADER_BYTES = 16 * 1024


def make_server(app: FastAPI, api: ApiConfig) -> uvicorn.Server:
    trusted = list(api.trusted_proxies)
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
    )
    return uvicorn.Server(config)
