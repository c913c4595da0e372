"""Readers, I/O modules and cameras going offline and back: health, a log line, an alert; a reader's
tamper switch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.alerts import AlertLog
from gateway.health import Health
from gateway.store.journal import AlertDraft

log = logging.getLogger("accessgw")

ALERT_OF = {"reader": "reader_offline", "io": "io_offline", "camera": "camera_offline"}


class DeviceAlerts:
    def __init__(self, health: Health, alerts: AlertLog, state_changed: Callable[[], None]) -> None:
        self.health, self.alerts, self.state_changed = health, alerts, state_changed
        self.tampered: set[str] = set()  # readers whose tamper alert is raised

    def reader_tamper(self, reader: str, active: bool) -> None:
        """A reader's own tamper switch (OSDP local status): the `tamper` alert, raised and cleared.

        The same kind as the cabinet's switch (gateway.door_watch); details name the source."""
        if active == (reader in self.tampered):
            return  # a repeated report is not news
        (self.tampered.add if active else self.tampered.discard)(reader)
        state, severity = ("raised", "critical") if active else ("cleared", "info")
        details = {"source": "reader", "reader": reader}
        self.alerts.raise_(AlertDraft(datetime.now(UTC), "tamper", state, severity, details=details))

    def status(self, kind: str, key: str, online: bool, error: str | None) -> None:
        table = {"reader": self.health.readers, "io": self.health.io_modules, "camera": self.health.cameras}[kind]
        first = key not in table
        if not self.health.set_online(table, key, online, error):
            return
        self.state_changed()
        log.log(logging.INFO if online else logging.WARNING, "%s %s %s %s", kind, key,
                "online" if online else "offline", error or "")  # fmt: skip
        if first and online:
            return  # coming up at start is not news
        details = {kind: key} | ({"error": error} if error else {})
        state, severity = ("cleared", "info") if online else ("raised", "warning")
        camera = key if kind == "camera" else None
        self.alerts.raise_(AlertDraft(datetime.now(UTC), ALERT_OF[kind], state, severity, camera=camera,
                                      details=details))  # fmt: skip
