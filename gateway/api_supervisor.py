"""The door process starts the API in a child process and brings it back when it dies (DESIGN §3).

The child gets its config pickled through a pipe (secrets never appear in its
command line or environment) and one end of a socket pair, over which it asks
the doors what gateway.control serves. A crash of the child costs the API for
a moment, never a door: the door loop only notices that the pipe closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Callable

from config.models import GatewayConfig
from gateway import control

log = logging.getLogger("accessgw")

RESTART_MIN_S, RESTART_MAX_S = 1.0, 30.0
STABLE_AFTER_S = 60.0  # a child that ran this long starts the backoff from scratch when it dies
STOP_WAIT_S = 5.0
TLS_RECHECK_S = 1.0  # an unusable API certificate or key is looked at again this often (two small file reads)
# The child must not talk to systemd for the service: readiness and the watchdog are the doors'.
CHILD_ENV_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


class ApiSupervisor:
    def __init__(
        self, cfg: GatewayConfig, handlers: dict[str, control.Handler], on_error: Callable[[str], None]
    ) -> None:
        self.cfg = cfg
        self.handlers = handlers
        self.on_error = on_error
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    async def run(self, stop: asyncio.Event) -> None:
        backoff = RESTART_MIN_S
        while not stop.is_set():
            await self._until_tls_usable(stop)
            if stop.is_set():
                return
            started = time.monotonic()
            code = await self._run_once(stop)
            if stop.is_set():
                return
            if time.monotonic() - started > STABLE_AFTER_S:
                backoff = RESTART_MIN_S
            message = f"API process exited ({_describe(code)}); starting it again in {backoff:.0f} s"
            log.error("%s", message)
            self.on_error(message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, RESTART_MAX_S)

    async def _until_tls_usable(self, stop: asyncio.Event) -> None:
        """With api.tls_cert_file: wait until the certificate and key can serve, looking every TLS_RECHECK_S,
        so that no child is started for nothing. The reason is one log line (again only when it changes) and
        …/state's last_error; the API starts within a second of the files being fixed."""
        if self.cfg.api.tls_cert_file is None:
            return
        from gateway.api.tls import ApiTlsError, server_context  # the standard library's ssl only

        said: str | None = None
        while not stop.is_set():
            try:
                await asyncio.to_thread(server_context, self.cfg.api)  # file reads: off the door loop
                return
            except ApiTlsError as exc:
                if str(exc) != said:
                    said = str(exc)
                    message = f"API not started: {said}; it starts once they are usable (looked at every second)"
                    log.error("%s", message)
                    self.on_error(message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TLS_RECHECK_S)

    async def _run_once(self, stop: asyncio.Event) -> int | None:
        ours, theirs = socket.socketpair()
        env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
        env.setdefault("MALLOC_ARENA_MAX", "2")  # dozens of request threads: one glibc arena each would hold memory
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.api.process", str(os.getpid()), str(theirs.fileno()),
                stdin=asyncio.subprocess.PIPE, pass_fds=(theirs.fileno(),), env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches the doors, which stop the API in order
            )  # fmt: skip
        except OSError as exc:
            ours.close()
            log.error("cannot start the API process: %s", exc)
            return None
        finally:
            theirs.close()
        self.starts += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(pickle.dumps(self.cfg))
        with contextlib.suppress(ConnectionError):
            await self.proc.stdin.drain()
        self.proc.stdin.close()
        log.info("API process %d on %s://%s:%d/api/v1 (web page at /)", self.proc.pid, self.cfg.api.scheme,
                 self.cfg.api.host, self.cfg.api.port)  # fmt: skip
        serving = asyncio.create_task(control.serve(ours, self.handlers), name="api-control")
        exited = asyncio.create_task(self.proc.wait(), name="api-exit")
        stopping = asyncio.create_task(stop.wait(), name="api-stop")
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                self._kill_group()
            else:
                await self._terminate(exited)
            return self.proc.returncode
        finally:
            for task in (serving, stopping, exited):
                task.cancel()
            ours.close()

    async def _terminate(self, exited: asyncio.Task[int]) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(exited), STOP_WAIT_S)
        except TimeoutError:
            log.warning("API process did not stop within %.0f s; killing it", STOP_WAIT_S)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await exited
        self._kill_group()

    def _kill_group(self) -> None:
        """Whatever the API process left behind (its photo worker) goes with it: it leads its own group."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _describe(code: int | None) -> str:
    if code is None:
        return "could not start"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"status {code}"
