"""The narrow channel between the door process and its API process.

The API (HTTP from the LAN) runs in a child process of its own (DESIGN §3):
whatever happens there cannot stop the doors. What the API needs from the
running doors goes over one socket pair as newline-delimited JSON, one
request and one answer at a time: the doors' state, device readiness, the
Prometheus text of the door process, and a remote open. Everything else the
API does through the shared SQLite database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_LINE = 1_000_000  # the metrics text is the largest answer
MAX_REQUEST = 4096  # requests are a command and a door id

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class ControlError(RuntimeError):
    """The door process did not answer (busy, restarting or gone)."""


async def serve(sock: socket.socket, handlers: dict[str, Handler]) -> None:
    """Answer requests on `sock` until the other side closes it (door process side)."""
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_REQUEST)
    try:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                log.warning("control: request over %d bytes; closing the channel", MAX_REQUEST)
                return
            if not line:
                return
            writer.write(json.dumps(await _answer(line, handlers)).encode() + b"\n")
            await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


async def _answer(line: bytes, handlers: dict[str, Handler]) -> dict[str, Any]:
    try:
        request = json.loads(line)
        handler = handlers[request["cmd"]]
    except (ValueError, KeyError, TypeError):
        return {"ok": False, "error": "bad request"}
    request_id = request.get("id")
    try:
        return {"id": request_id, "ok": True, "result": await handler(request)}
    except Exception as exc:  # an API request must never take the door loop down
        log.exception("control request %s failed", request.get("cmd"))
        return {"id": request_id, "ok": False, "error": str(exc)}


class ControlClient:
    """The API process's side: blocking calls, one at a time, each with a timeout.

    Each request carries an id; an answer that comes after its caller gave up
    is skipped by the next caller instead of being taken for its own.
    """

    def __init__(self, sock: socket.socket, timeout_s: float = 2.0) -> None:
        self._sock = sock
        self._timeout_s = timeout_s
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._next_id = 0

    def call(self, cmd: str, **args: Any) -> Any:
        deadline = time.monotonic() + self._timeout_s
        if not self._lock.acquire(timeout=self._timeout_s):
            raise ControlError("the door process is busy")
        try:
            self._next_id += 1
            request_id = self._next_id
            try:
                self._sock.settimeout(self._timeout_s)
                self._sock.sendall(json.dumps({"cmd": cmd, "id": request_id, **args}).encode() + b"\n")
                while True:
                    answer = json.loads(self._read_line(deadline))
                    if answer.get("id") == request_id:
                        break
            except (OSError, ValueError) as exc:
                raise ControlError(f"the door process did not answer: {exc}") from None
        finally:
            self._lock.release()
        if not answer.get("ok"):
            raise ControlError(str(answer.get("error")))
        return answer.get("result")

    def _read_line(self, deadline: float) -> bytes:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            if len(self._buffer) > MAX_LINE:
                self._buffer.clear()
                raise ValueError("answer too long")
            self._sock.settimeout(left)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("the door process closed the channel")
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line

    def close(self) -> None:
        self._sock.close()
