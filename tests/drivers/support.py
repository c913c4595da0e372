"""Helpers for driver tests: bounded waiting and a thread-safe event sink."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from drivers.events import DriverEvent
from testing.peers import wait_until

__all__ = ["Events", "wait_until"]


class Events:
    """Thread-safe sink for driver events (the `emit` callback)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: list[DriverEvent] = []

    def __call__(self, event: DriverEvent) -> None:
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def snapshot(self) -> list[DriverEvent]:
        with self._cond:
            return list(self.items)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.snapshot() if isinstance(e, kind)]

    def mark(self) -> int:
        with self._cond:
            return len(self.items)

    def wait(self, predicate: Callable[[DriverEvent], bool], timeout: float = 5.0, after: int = 0) -> Any:
        """The first event at index >= `after` matching `predicate`; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.items[after:]:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching event within {timeout:.1f} s; got {self.items[after:]!r}")
                self._cond.wait(remaining)
