"""`…/request/{cmd}` → handler → `…/response/{cmd}` (Zigbee2MQTT style).

Handlers are registered by the gateway in a table; this module only parses,
routes and answers, echoing `transaction`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

# Bounds on what a request may make us parse and echo (DESIGN §6.1 refuses with `malformed`).
MAX_PAYLOAD = 256 * 1024  # a roster snapshot chunk is at most 200 KB
MAX_TRANSACTION = 128  # characters of a string, or digits of an integer
# The command is echoed into the topic `…/response/{command}`: only names like ours, so that
# no request makes us publish on a topic of its choosing (`+`, `#`, `..`, a NUL, a megabyte).
COMMAND = re.compile(r"^[a-z0-9/_-]{1,64}$")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


class CommandError(Exception):
    """Raised by a handler to answer `status: error` with a code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class CommandRouter:
    def __init__(self, respond: Callable[[str, str], None]) -> None:
        self._respond = respond  # (command, JSON payload) -> publish on …/response/{command}
        self._handlers: dict[str, Handler] = {}

    def register(self, command: str, handler: Handler) -> None:
        self._handlers[command] = handler

    @property
    def commands(self) -> list[str]:
        return sorted(self._handlers)

    async def dispatch(self, command: str, raw: bytes) -> dict[str, Any] | None:
        """Answer one request; None (and no answer) when the command name is not one we could answer on."""
        if not COMMAND.fullmatch(command):
            log.warning("request on an odd topic ignored: %r (%d bytes)", command[:80], len(raw))
            return None
        transaction: Any = None
        try:
            if len(raw) > MAX_PAYLOAD:
                raise CommandError("malformed", f"payload of {len(raw)} bytes; at most {MAX_PAYLOAD}")
            try:
                request = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            except ValueError as exc:  # not UTF-8, not JSON, or an integer too long to convert
                raise CommandError("bad_request", f"payload is not JSON: {exc}") from exc
            if not isinstance(request, dict):
                raise CommandError("bad_request", "payload must be a JSON object")
            transaction = _transaction(request.get("transaction"))
            handler = self._handlers.get(command)
            if handler is None:
                raise CommandError("unknown_command", f"unknown command {command!r}")
            result = await handler(request) or {}
            response = {"transaction": transaction, "status": "ok", **result}
        except CommandError as exc:
            log.warning("request %s refused: %s", command, exc)
            response = {"transaction": transaction, "status": "error", "error": exc.code, "message": str(exc)}
        except Exception as exc:  # a handler bug answers, it does not go silent
            log.exception("request %s failed", command)
            response = {"transaction": transaction, "status": "error", "error": "internal", "message": str(exc)}
        self._respond(command, json.dumps(response))
        return response


def _transaction(value: Any) -> str | int | None:
    """The `transaction` to echo: a short string or integer; anything else is refused, not echoed."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_TRANSACTION):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**MAX_TRANSACTION:
        return value
    raise CommandError("malformed", f"transaction must be a string or integer of at most {MAX_TRANSACTION} chars")
