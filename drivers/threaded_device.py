"""The thread skeleton every blocking device driver shares (DESIGN §3): one daemon thread per device.

A subclass writes one connection attempt (`_session`: open, report online, read until it fails)
and the status event it reports; this base owns the rest: start/stop, retrying with a doubling
backoff, online/offline reported once per change, and an `emit` that a failing consumer cannot
break. The drivers keep deciding nothing: they only report what the hardware does.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from drivers.events import DriverEvent

log = logging.getLogger(__name__)


class ThreadedDevice(ABC):
    """A device read by one daemon thread that reconnects on its own until `stop()`.

    `emit` is called from the device thread and must not block; the gateway hands events to its
    loop (e.g. with `loop.call_soon_threadsafe`). `start`, `stop` and `online` are safe from any thread.
    """

    # Seconds a session must have been online for its failure to count as a new outage, so the next
    # attempt starts again from the shortest wait; a device that fails right after opening keeps
    # backing off, so its status cannot flap quickly.
    HEALTHY_AFTER_S: ClassVar[float] = 1.0
    # True: after an outage of a healthy session, try again at once instead of after the shortest wait.
    RETRY_AT_ONCE_AFTER_HEALTHY: ClassVar[bool] = False

    def __init__(
        self,
        kind: str,
        device_id: str,
        emit: Callable[[DriverEvent], None],
        *,
        backoff_initial_s: float,
        backoff_max_s: float,
    ) -> None:
        self._label = f"{kind} {device_id}"  # "reader r1": the prefix of every log line
        self._thread_name = f"{kind}-{device_id}"
        self._emit = emit
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._online: bool | None = None  # None until the first attempt ends either way
        self._online_since: float | None = None  # when the current session reported online

    # --- life cycle, any thread ------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return bool(self._online)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            if not self._stop.is_set():
                return  # already running
            # A thread that outlived stop() must end first: never two threads on one device.
            self._thread.join(self._stop_timeout())
            if self._thread.is_alive():
                raise RuntimeError(f"{self._label}: the previous thread is still blocked")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread; waits at most `timeout` s (default: the device's longest blocking call).

        A thread still blocked after that is a daemon: it ends, releasing the device, when the call returns.
        """
        self._stop.set()
        self._wake()
        thread = self._thread
        if thread is None:
            return
        bound = self._stop_timeout() if timeout is None else timeout
        thread.join(bound)
        if thread.is_alive():
            log.error("%s: thread did not stop within %.1f s", self._label, bound)
        else:
            self._thread = None  # kept while alive, so that start() waits for it

    # --- for subclasses ----------------------------------------------------------------------------

    @abstractmethod
    def _session(self) -> str:
        """One attempt: open the device, `_set_online(True)` once it works, serve it until it fails or stop().

        Returns why it ended (ignored after stop()). Expected failures (device gone, timeouts) are
        returned as text; anything raised is treated as a driver bug: logged with its traceback.
        """

    @abstractmethod
    def _status_event(self, online: bool, error: str | None) -> DriverEvent:
        """The event that reports a change of `online` (ReaderStatus, IoStatus, ...)."""

    def _online_detail(self) -> str:
        """What the log says when the device comes online."""
        return "online"

    def _wake(self) -> None:
        """Called by stop(): cut short whatever the thread blocks on, where that can be done."""
        return None

    def _stop_timeout(self) -> float:
        """How long stop() waits by default: the longest call the thread can be blocked in."""
        return 2.0

    def _pause(self, seconds: float) -> bool:
        """Wait before the next attempt (returns early on stop()). True: the device is back, retry now
        and start over from the shortest wait."""
        self._stop.wait(seconds)
        return False

    def _thread_exit(self) -> None:
        """Last thing the thread does, also after an error: e.g. leave the outputs in a safe state."""
        return None

    def _set_online(self, online: bool, error: str | None = None) -> None:
        if online and self._online_since is None:
            self._online_since = time.monotonic()
        if self._online == online:
            return  # once per transition, not on every retry
        self._online = online
        if online:
            log.info("%s: %s", self._label, self._online_detail())
        else:
            log.warning("%s: offline: %s", self._label, error)
        self._send(self._status_event(online, None if online else error))

    def _send(self, event: DriverEvent) -> None:
        try:
            self._emit(event)
        except Exception:  # a failing consumer must not stop the device thread
            log.exception("%s: emit failed for %r", self._label, event)

    # --- device thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff_initial
        try:
            while not self._stop.is_set():
                self._online_since = None
                try:
                    error = self._session()
                except Exception as exc:  # a driver bug must not end the thread for good
                    log.exception("%s: unexpected error", self._label)
                    error = f"{type(exc).__name__}: {exc}"
                if self._stop.is_set():
                    break  # stop() is not an outage
                since = self._online_since
                healthy = since is not None and time.monotonic() - since >= self.HEALTHY_AFTER_S
                self._set_online(False, error)
                if healthy:
                    backoff = self._backoff_initial  # it worked for a while: this is a new outage
                    if self.RETRY_AT_ONCE_AFTER_HEALTHY:
                        continue
                if self._pause(backoff):
                    backoff = self._backoff_initial
                else:
                    backoff = min(backoff * 2, self._backoff_max)
        finally:
            self._thread_exit()
            log.debug("%s: thread stopped", self._label)
