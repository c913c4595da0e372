"""OSDP readers for tests: libosdp's own peripheral-device side on the far end of a socat pty pair.

    link = VirtualSerialLink(tmp / "osdp-pd", tmp / "osdp-gw")   # the gateway opens osdp-gw
    line = BusLine(link.a)                                      # the readers' side of the RS-485 bus
    reader = SimulatedOsdpReader(line, address=0, scbk=key)     # secure channel on (EnforceSecure)
    reader.start(); reader.swipe(305419896, 34); reader.tamper(True)
    reader.wait_commands(2)                                     # the LED and buzzer commands it got
    reader.stop(); line.close()

A pty carries bytes from one writer to one reader, while RS-485 is a party line: `BusLine` reads
the pty once and gives every reader on it a copy, so several addresses share one bus as on site.
"""

from __future__ import annotations

import os
import termios
import threading
import time
from typing import Any

import osdp

from drivers.wiegand import encode_wiegand

CAPABILITIES = osdp.PDCapabilities(
    [
        (osdp.Capability.LEDControl, 1, 1),
        (osdp.Capability.AudibleControl, 1, 1),
        (osdp.Capability.CommunicationSecurity, 1, 1),
        (osdp.Capability.CardDataFormat, 1, 1),
    ]
)


def new_scbk() -> bytes:
    return os.urandom(16)


def left_aligned(bits: str) -> bytes:
    """OSDP's raw card data: the bits most significant first, left-aligned, padded with zeros."""
    padded = bits + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big")


class BusLine:
    """The readers' end of a pty pair as a bus: every reader hears every byte the control panel sends."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        termios.tcflush(self._fd, termios.TCIOFLUSH)  # bytes sent to a reader that was not there are gone
        self._lock = threading.Lock()
        self._buffers: list[bytearray] = []
        self.closed = False

    def channel(self) -> osdp.Channel:
        buffer = bytearray()
        self._buffers.append(buffer)
        return _Tap(self, buffer)

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 4096)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            for buffer in self._buffers:
                buffer.extend(data)

    def _read(self, buffer: bytearray, max_bytes: int) -> bytes:
        with self._lock:
            if self.closed:
                return b""
            self._pump()
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
            return data

    def _write(self, data: bytes) -> int:
        with self._lock:
            if self.closed:
                return 0
            try:
                return os.write(self._fd, data)
            except (BlockingIOError, OSError):
                return 0

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                os.close(self._fd)


class _Tap(osdp.Channel):
    def __init__(self, line: BusLine, buffer: bytearray) -> None:
        super().__init__()
        self._line, self._buffer = line, buffer

    def read(self, max_bytes: int) -> bytes:
        return self._line._read(self._buffer, max_bytes)

    def write(self, buf: bytes) -> int:
        return self._line._write(buf)

    def flush(self) -> None:
        return None


class SimulatedOsdpReader:
    """A card reader speaking OSDP (libosdp's PeripheralDevice) at `address` on `line`.

    `scbk=None` with `install_mode=True` is a factory reader waiting for its key (SCBK-D)."""

    def __init__(self, line: BusLine, address: int, scbk: bytes | None, *, install_mode: bool = False) -> None:
        self.address = address
        flags = [osdp.LibFlag.InstallMode] if install_mode else [osdp.LibFlag.EnforceSecure]
        info = osdp.PDInfo(address, line.channel(), scbk=scbk, name=f"sim-{address}", flags=flags)
        self._pd = osdp.PeripheralDevice(info, CAPABILITIES, log_level=osdp.LogLevel.Error)
        self._received: list[dict[str, Any]] = []
        self.running = False

    @property
    def secure(self) -> bool:
        """The secure channel with the control panel is up."""
        return bool(self._pd.is_sc_active())

    def start(self) -> None:
        self._pd.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self._pd.stop()

    def swipe(self, number: int, bits: int = 26) -> None:
        """Present a card: a raw Wiegand read of `bits` bits with valid parity."""
        self.raw_read(encode_wiegand(number, bits))

    def raw_read(self, bits: str) -> None:
        """Report these Wiegand bits as read (parity as given: a bad one tests the gateway)."""
        event = {"event": osdp.Event.CardRead, "reader_no": 0, "format": osdp.CardFormat.Wiegand,
                 "direction": 0, "length": len(bits), "data": left_aligned(bits)}  # fmt: skip
        if not self._pd.submit_event(event):
            raise RuntimeError(f"libosdp refused the card read at reader {self.address}")

    def tamper(self, active: bool) -> None:
        """Report the tamper switch (local status: tamper byte, power byte)."""
        event = {"event": osdp.Event.Status, "type": osdp.StatusReportType.Local, "report": bytes([int(active), 0])}
        if not self._pd.submit_event(event):
            raise RuntimeError(f"libosdp refused the status report at reader {self.address}")

    def commands(self) -> list[dict[str, Any]]:
        """Every command received so far (LED, buzzer, ...), in order."""
        while (command := self._pd.get_command(timeout=-1)) is not None:
            self._received.append(command)
        return list(self._received)

    def wait_commands(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.commands()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"reader {self.address}: {count} commands expected, got {self._received!r}")
            time.sleep(0.02)
        return list(self._received)

    def wait_secure(self, timeout: float = 10.0) -> float:
        """Seconds until the secure channel is up; AssertionError after `timeout`."""
        start = time.monotonic()
        while not self.secure:
            if time.monotonic() - start > timeout:
                raise AssertionError(f"reader {self.address}: no secure channel within {timeout} s")
            time.sleep(0.02)
        return time.monotonic() - start
