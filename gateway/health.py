"""What the gateway knows about its own devices, for `…/state` and `check`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway import __version__


@dataclass
class DeviceHealth:
    online: bool = False
    error: str | None = None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Health:
    readers: dict[str, DeviceHealth] = field(default_factory=dict)
    io_modules: dict[str, DeviceHealth] = field(default_factory=dict)
    cameras: dict[str, DeviceHealth] = field(default_factory=dict)
    bad_frames: dict[str, Counter[str]] = field(default_factory=dict)
    swipes: int = 0
    last_error: str | None = None

    def count_bad_frame(self, reader: str, kind: str) -> None:
        self.bad_frames.setdefault(reader, Counter())[kind] += 1

    def set_online(self, table: dict[str, DeviceHealth], key: str, online: bool, error: str | None) -> bool:
        """Record a device's status; True when it changed."""
        current = table.setdefault(key, DeviceHealth(online=not online))
        changed = current.online != online
        if changed:
            table[key] = DeviceHealth(online=online, error=error)
        elif error:
            current.error = error
        if error:
            self.last_error = f"{key}: {error}"
        return changed

    def state_payload(self, roster_version: int | str | None, outbox_depth: int) -> dict[str, Any]:
        def devices(table: dict[str, DeviceHealth]) -> dict[str, Any]:
            return {k: {"online": v.online, "error": v.error} for k, v in sorted(table.items())}

        return {
            "ts": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "version": __version__,
            "roster_version": roster_version,
            "outbox_depth": outbox_depth,
            "swipes": self.swipes,
            "bad_frames": {r: dict(c) | {"total": sum(c.values())} for r, c in sorted(self.bad_frames.items())},
            "readers": devices(self.readers),
            "io_modules": devices(self.io_modules),
            "cameras": devices(self.cameras),
            "last_error": self.last_error,
        }
