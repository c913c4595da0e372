"""Card reader on a serial port: bytes in, CardPresented / BadFrame / ReaderStatus out.

One daemon thread owns the port. It never decides anything: every frame that
passes the framer becomes a CardPresented, every rejected one a BadFrame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import serial

from config.models import ReaderConfig
from drivers.events import BadFrame, CardPresented, DriverEvent, ReaderStatus
from drivers.framers import Framer, framer_for
from drivers.frames import Card, FrameError
from drivers.threaded_device import ThreadedDevice

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.2  # also bounds how long stop() waits for a blocked read
BAD_FRAME_LOG_INTERVAL_S = 5.0


class _RateLimitedLog:
    """Logs the first bad frame, then at most one line per interval with a count of the rest.

    A reader spewing noise must not flood the journal; the counts still reach the
    gateway through BadFrame events.
    """

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._last = -interval_s
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._suppressed += 1
            return
        if self._suppressed:
            msg += " (%d more bad frames not logged)"
            args = (*args, self._suppressed)
        log.warning(msg, *args)
        self._last = now
        self._suppressed = 0


class SerialCardReader(ThreadedDevice):
    """Reads one serial card reader (`wiegand-text` or `rdm6300`) in its own thread.

    `emit` is called from the reader thread; the gateway hands events to its loop
    (e.g. with `loop.call_soon_threadsafe`).
    """

    def __init__(
        self,
        config: ReaderConfig,
        emit: Callable[[DriverEvent], None],
        *,
        backoff_initial_s: float = 0.2,
    ) -> None:
        super().__init__(
            "reader", config.id, emit, backoff_initial_s=backoff_initial_s, backoff_max_s=config.reconnect_max_s
        )
        self.config = config
        self._framer: Framer = framer_for(config.protocol)
        self._port: serial.Serial | None = None
        self._port_lock = threading.Lock()  # guards _port between the thread and stop()
        self._bad_log = _RateLimitedLog(BAD_FRAME_LOG_INTERVAL_S)

    def _wake(self) -> None:
        with self._port_lock:
            if self._port is not None:
                try:
                    self._port.cancel_read()  # wake a blocked read at once instead of after READ_TIMEOUT_S
                except Exception:  # best effort; the read times out anyway
                    pass

    # --- reader thread -------------------------------------------------

    def _session(self) -> str:
        try:
            port = serial.Serial(self.config.port, self.config.baudrate, timeout=READ_TIMEOUT_S)
        except (serial.SerialException, OSError, ValueError) as exc:
            return f"cannot open {self.config.port}: {exc}"
        with self._port_lock:
            self._port = port
        try:
            self._framer.reset()  # a partial frame from before the outage is not part of the next one
            self._set_online(True)
            self._read_loop(port)
        except (serial.SerialException, OSError) as exc:
            # Unplugged USB adapter or a pty whose other end closed ("returned no data").
            return f"{self.config.port}: {exc}"
        finally:
            with self._port_lock:
                self._port = None
            try:
                port.close()
            except Exception:  # closing a vanished device may fail; it is gone anyway
                pass
        return ""

    def _read_loop(self, port: serial.Serial) -> None:
        while not self._stop.is_set():
            # Read what is there, or block for one byte: a frame is handled as soon as its last byte arrives.
            data = port.read(port.in_waiting or 1)
            if data:
                for result in self._framer.feed(data):
                    self._handle(result)

    def _handle(self, result: Card | FrameError) -> None:
        reader = self.config.id
        if isinstance(result, FrameError):
            self._bad_log.warning("reader %s: bad frame (%s): %s", reader, result.kind, result.detail)
            self._send(BadFrame(reader=reader, kind=result.kind, detail=result.detail))
        else:
            self._send(CardPresented(reader=reader, card_number=result.number, card_bits=result.bits))

    def _status_event(self, online: bool, error: str | None) -> ReaderStatus:
        return ReaderStatus(reader=self.config.id, online=online, error=error)

    def _online_detail(self) -> str:
        return f"{self.config.port} open"

    def feedback(self, granted: bool) -> None:
        """Serial converters have no LED or buzzer line the gateway drives: nothing to show."""
        return None


def probe_reader_port(config: ReaderConfig) -> str | None:
    """For `accessgw check`: None when the reader's port opens, else why not.

    A card reader speaks only when a card is presented, so an open port is
    all that can be checked without a swipe.
    """
    try:
        port = serial.Serial(config.port, config.baudrate, timeout=READ_TIMEOUT_S)
    except (serial.SerialException, OSError, ValueError) as exc:
        return f"cannot open: {exc}"
    port.close()
    return None
