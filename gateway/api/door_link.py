"""The door process as the API process sees it: `GatewayHooks` over the control channel."""

from __future__ import annotations

import threading
import time
from typing import Any

from gateway.control import ControlClient, ControlError

READY_CACHE_S = 0.5  # 48 pollers of /ready cost the door process at most two answers a second


class DoorLink:
    def __init__(self, client: ControlClient) -> None:
        self._client = client
        self._ready_lock = threading.Lock()
        self._ready: tuple[float, dict[str, Any]] | None = None

    def open_door(self, door_id: str, actor: str) -> None:
        self._client.call("open", door=door_id, actor=actor)

    def door_states(self) -> list[dict[str, Any]]:
        return self._client.call("doors")

    def metrics_text(self) -> str:
        return self._client.call("metrics")

    def readiness(self) -> dict[str, Any]:
        with self._ready_lock:
            now = time.monotonic()
            if self._ready is None or now - self._ready[0] > READY_CACHE_S:
                try:
                    report = self._client.call("ready")
                except ControlError as exc:
                    report = {"ready": False, "doors": f"the door process does not answer: {exc}"}
                self._ready = (now, report)
            return dict(self._ready[1])

