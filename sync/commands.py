"""`…/request/{cmd}` → handler → `…/response/{cmd}` (Zigbee2MQTT style).

Handlers are registered by the gateway in a table; this module only parses,
routes and answers, echoing `transaction`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

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

    async def dispatch(self, command: str, raw: bytes) -> dict[str, Any]:
        transaction: Any = None
        try:
            try:
                request = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CommandError("bad_request", f"payload is not JSON: {exc}") from exc
            if not isinstance(request, dict):
                raise CommandError("bad_request", "payload must be a JSON object")
            transaction = request.get("transaction")
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
