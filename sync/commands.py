"""`…/request/{cmd}` → handler → `…/response/{cmd}` (Zigbee2MQTT style).

Handlers are registered by the gateway in a table; this module only parses,
routes and answers, echoing `transaction`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from nacl.signing import VerifyKey

from sync.signing import verify

log = logging.getLogger(__name__)

# Bounds on what a request may make us parse and echo (DESIGN §6.1 refuses with `malformed`).
MAX_PAYLOAD = 256 * 1024  # a roster snapshot chunk is at most 200 KB
MAX_TRANSACTION = 128  # characters of a string, or digits of an integer
# Requests taken from the broker and not yet answered: at most 32 x 256 KB held. Beyond that the MQTT
# thread waits, and the broker keeps the rest (QoS 1 flow control): a flood costs the broker, not us.
MAX_WAITING = 32
# The command is echoed into the topic `…/response/{command}`: only names like ours, so that
# no request makes us publish on a topic of its choosing (`+`, `#`, `..`, a NUL, a megabyte).
COMMAND = re.compile(r"^[a-z0-9/_-]{1,64}$")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


class CommandError(Exception):
    """Raised by a handler to answer `status: error` with a code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class ReplayMemory(Protocol):
    def first_time(self, transaction: str, now: datetime) -> bool:
        """Remember `transaction`; False if it was seen in the last 24 h (across restarts)."""
        ...


@dataclass
class RequestGuard:
    """Who may ask what (DESIGN §6.1): every request but `state` signed by the platform, fresh and new.

    Refusals in the order DESIGN gives: bad_signature, stale, replayed (then malformed and
    unknown_command in the router). Nothing is looked up before the signature holds.
    """

    key: VerifyKey | None  # None: a building not yet joined to a town accepts only `state`
    memory: ReplayMemory
    max_skew_s: float = 300.0
    unsigned: frozenset[str] = frozenset({"state"})
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def needs_signature(self, command: str) -> bool:
        return command not in self.unsigned

    def check(self, command: str, request: dict[str, Any]) -> None:
        if not self.needs_signature(command):
            return
        if self.key is None:
            raise CommandError("bad_signature", "no platform key is configured: only `state` is accepted")
        if not verify(request, self.key):
            raise CommandError("bad_signature", "unsigned, or not signed by the platform's key")
        now = self.clock()
        issued = _issued_at(request.get("issued_at"))
        if issued is None or abs((now - issued).total_seconds()) > self.max_skew_s:
            raise CommandError("stale", f"issued_at must be within {self.max_skew_s:.0f} s of the gateway's clock")
        transaction = request.get("transaction")
        if isinstance(transaction, str | int) and not isinstance(transaction, bool):
            if not self.memory.first_time(str(transaction)[:MAX_TRANSACTION], now):
                raise CommandError("replayed", f"transaction {str(transaction)[:40]!r} was seen in the last 24 h")


def _issued_at(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else None


class CommandRouter:
    def __init__(self, respond: Callable[[str, str], None], guard: RequestGuard | None = None) -> None:
        self._respond = respond  # (command, JSON payload) -> publish on …/response/{command}
        self._handlers: dict[str, Handler] = {}
        self._guard = guard
        # One request at a time per lane, in the order the broker delivered them: roster patches and
        # snapshot chunks depend on it, and parsing happens in a thread that could otherwise finish out of
        # order. The roster has a lane of its own, so that a remote open never waits for a snapshot.
        self._lanes: dict[str, asyncio.Lock] = {}
        self._room = threading.BoundedSemaphore(MAX_WAITING)

    def _lane(self, command: str) -> str:
        if command.startswith("roster/"):
            return "roster"
        return command if command in self._handlers else "unknown"  # a lock per name we answer, no more

    def register(self, command: str, handler: Handler) -> None:
        self._handlers[command] = handler

    @property
    def commands(self) -> list[str]:
        return sorted(self._handlers)

    def submit(self, command: str, raw: bytes, loop: asyncio.AbstractEventLoop, wait_s: float = 10.0) -> bool:
        """From the MQTT thread: hand a request to the loop, waiting while MAX_WAITING are not yet answered.

        False (and a log line) if it was dropped: no room after `wait_s`, or the loop is gone.
        """
        if not self._room.acquire(timeout=wait_s):
            log.warning("request %s dropped: %d requests are still waiting for an answer", command[:64], MAX_WAITING)
            return False
        try:
            future = asyncio.run_coroutine_threadsafe(self.dispatch(command, raw), loop)
        except RuntimeError:  # the loop closed: shutting down
            self._room.release()
            return False
        future.add_done_callback(lambda _: self._room.release())
        return True

    async def dispatch(self, command: str, raw: bytes) -> dict[str, Any] | None:
        """Answer one request; None (and no answer) when the command name is not one we could answer on."""
        if not COMMAND.fullmatch(command):
            log.warning("request on an odd topic ignored: %r (%d bytes)", command[:80], len(raw))
            return None
        echo: list[Any] = [None]  # the transaction to echo, known once the payload is parsed
        try:
            # Parsing, the signature and the replay check run off the loop: a 200 KB roster chunk
            # costs milliseconds of JSON and hashing, and the loop decides the doors.
            async with self._lanes.setdefault(self._lane(command), asyncio.Lock()):
                request = await asyncio.to_thread(self._admit, command, raw, echo)
                transaction = _transaction(request.get("transaction"))
                handler = self._handlers.get(command)
                if handler is None:
                    raise CommandError("unknown_command", f"unknown command {command!r}")
                result = await handler(request) or {}
            response = {"transaction": transaction, "status": "ok", **result}
        except CommandError as exc:
            log.warning("request %s refused: %s", command, exc)
            response = {"transaction": echo[0], "status": "error", "error": exc.code, "message": str(exc)}
        except Exception as exc:  # a handler bug answers, it does not go silent
            log.exception("request %s failed", command)
            response = {"transaction": echo[0], "status": "error", "error": "internal", "message": str(exc)}
        self._respond(command, json.dumps(response))
        return response

    def _admit(self, command: str, raw: bytes, echo: list[Any]) -> dict[str, Any]:
        """The parsed request once it is bounded, signed, fresh and new; else CommandError."""
        if len(raw) > MAX_PAYLOAD:
            raise CommandError("malformed", f"payload of {len(raw)} bytes; at most {MAX_PAYLOAD}")
        # Garbage cannot carry a valid signature: where one is needed, that is the refusal.
        garbage = "bad_signature" if self._guard and self._guard.needs_signature(command) else "malformed"
        try:
            request = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, an integer too long, nested too deep
            raise CommandError(garbage, f"payload is not JSON: {str(exc)[:200]}") from exc
        if not isinstance(request, dict):
            raise CommandError(garbage, "payload must be a JSON object")
        echo[0] = _echoable(request.get("transaction"))
        if self._guard is not None:
            self._guard.check(command, request)
        return request


def _echoable(value: Any) -> str | int | None:
    try:
        return _transaction(value)
    except CommandError:
        return None


def _transaction(value: Any) -> str | int | None:
    """The `transaction` to echo: a short string or integer; anything else is refused, not echoed."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_TRANSACTION):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**MAX_TRANSACTION:
        return value
    raise CommandError("malformed", f"transaction must be a string or integer of at most {MAX_TRANSACTION} chars")
