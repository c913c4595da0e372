"""The API's own process, started and watched by the door process (DESIGN §3).

    python -m gateway.api.process PARENT_PID CONTROL_FD   (the config arrives pickled on stdin)

HTTP from the LAN is parsed, authenticated and answered here, at a lower CPU
priority than the doors and first in line for the OOM killer: a crash, a
flood or a huge upload costs this process, which the door process restarts.
It shares the SQLite database (WAL, a connection per thread) and reaches the
doors only through gateway.control.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import sys

from config.models import GatewayConfig
from gateway.priorities import api_after_doors, die_with_parent

EXIT_TLS = 4  # api.tls_cert_file / tls_key_file unusable (the log line says why)

log = logging.getLogger("accessgw.api")


def serve(cfg: GatewayConfig, control_fd: int) -> None:
    from gateway.api.app import create_app
    from gateway.api.auth import FailureLimiter
    from gateway.api.context import ApiContext
    from gateway.api.door_link import DoorLink
    from gateway.api.server import make_server
    from gateway.api.tls import ApiTlsError
    from gateway.control import ControlClient
    from gateway.snapshots import SnapshotStore
    from gateway.store.db import make_engine, session_factory

    engine = make_engine(cfg.data_dir, sync_each_commit=False)  # see make_engine: the doors' fsyncs go first
    hooks = DoorLink(ControlClient(socket.socket(fileno=control_fd)))
    ctx = ApiContext(cfg, engine, session_factory(engine), hooks, SnapshotStore(cfg.data_dir),
                     FailureLimiter(cfg.api.failed_auth_limit))  # fmt: skip
    try:
        server = make_server(create_app(ctx), cfg.api)
    except ApiTlsError as exc:  # the door process looked before starting us: the files changed since
        log.error("API not started: %s", exc)
        ctx.photos.close()
        engine.dispose()
        sys.exit(EXIT_TLS)
    try:
        server.run()  # handles SIGTERM from the door process: finishes requests in flight, then exits
    finally:
        ctx.photos.close()
        engine.dispose()
    if not server.started:
        sys.exit(3)  # could not bind: the door process says so and tries again later


def main() -> None:
    parent_pid, control_fd = int(sys.argv[1]), int(sys.argv[2])
    die_with_parent(parent_pid)
    api_after_doors()
    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        stream=sys.stderr)  # fmt: skip
    cfg: GatewayConfig = pickle.load(sys.stdin.buffer)  # from our own parent, through a pipe only it holds
    serve(cfg, control_fd)


if __name__ == "__main__":
    main()
