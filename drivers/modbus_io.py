"""Relay / input module over Modbus RTU: lock pulses and held coils out, DoorInput / IoStatus in.

RS-485 is half duplex: one request at a time. So one daemon thread owns the
ModbusSerialClient and does all bus access; callers only put commands on a
queue, which never blocks them. The thread waits on that queue with a timeout
equal to the time until the next poll or pulse end, so a pulse's ON write goes
out as soon as the bus is free, without sleeping in the command path.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from pymodbus.client import ModbusSerialClient
from pymodbus.pdu import ModbusPDU

from config.models import IoModuleConfig
from drivers.events import DoorInput, DriverEvent, IoStatus
from drivers.threaded_device import ThreadedDevice

log = logging.getLogger(__name__)

MAX_COIL = 65535
MAX_READ_COILS = 2000  # the most one Modbus read_coils request may ask for


class _Pulse(NamedTuple):
    coil: int
    end: float  # time.monotonic() when the coil goes off; fixed when pulse() is called
    sent: threading.Event  # set once the ON write is handed to the port (or none was needed)


class _Hold(NamedTuple):
    coil: int
    on: bool


_Command = _Pulse | _Hold


class BusError(Exception):
    """A request that failed: no answer, an exception response, or the port is gone."""


class ModbusIoModule(ThreadedDevice):
    """One Modbus RTU I/O module: coils 0.. drive lock relays, discrete inputs 0.. are polled.

    A `Lock` and `DoorInputs` (drivers/devices.py). `pulse`, `hold`, `release`, `start` and `stop`
    may be called from any thread (typically the asyncio loop); `emit` is called from the module's thread.
    """

    RETRY_AT_ONCE_AFTER_HEALTHY = True  # one lost answer on a working bus is no reason to wait

    def __init__(
        self,
        config: IoModuleConfig,
        emit: Callable[[DriverEvent], None],
        *,
        backoff_initial_s: float = 0.2,
        retries: int = 1,
    ) -> None:
        super().__init__(
            "io", config.id, emit, backoff_initial_s=backoff_initial_s, backoff_max_s=config.reconnect_max_s
        )
        self.config = config
        self._retries = retries
        self._commands: queue.SimpleQueue[_Command | None] = queue.SimpleQueue()
        # Owned by the module thread only:
        self._client: ModbusSerialClient | None = None
        self._connected = False
        self._held: dict[int, bool] = {}  # hold/release state, re-applied after every reconnect
        self._pulse_end: dict[int, float] = {}
        self._written: dict[int, bool] = {}  # what the module is known to hold since the last connect
        self._known: set[int] = set()  # every coil ever commanded: all are rewritten after a reconnect
        self._inputs: list[bool] | None = None
        self._next_poll = 0.0
        self._awaiting_send: list[threading.Event] = []  # pulse() callers waiting for their write to leave

    # --- API, any thread -------------------------------------------------

    def pulse(self, coil: int, ms: int) -> threading.Event:
        """Coil ON now, OFF after `ms`. A pulse on a coil already pulsing extends it to the later end.

        Returns an event set when the ON write has left for the module (or was
        not needed): a caller on the door's path may wait on it briefly, which
        also hands the GIL to this module's thread at once.
        """
        self._check_coil(coil)
        if ms <= 0:
            raise ValueError(f"pulse length must be positive, not {ms} ms")
        sent = threading.Event()
        self._commands.put(_Pulse(coil, time.monotonic() + ms / 1000.0, sent))
        return sent

    def hold(self, coil: int) -> None:
        """Hold a coil ON until release() (e.g. fire-alarm unlock); cancels a pending pulse end on that coil."""
        self._put_hold(coil, True)

    def release(self, coil: int) -> None:
        """Hold a coil OFF; cancels a pending pulse end on that coil."""
        self._put_hold(coil, False)

    def set_coil(self, coil: int, on: bool) -> None:
        """hold(coil) or release(coil); kept for callers not yet moved to those."""
        self._put_hold(coil, on)

    def _put_hold(self, coil: int, on: bool) -> None:
        self._check_coil(coil)
        self._commands.put(_Hold(coil, bool(on)))

    # stop() (ThreadedDevice): active pulses end (coil OFF, best effort), held coils stay as they are.

    def _wake(self) -> None:
        self._commands.put(None)  # wake the thread if it waits on the queue

    def _stop_timeout(self) -> float:
        # A request in flight may take (retries + 1) * timeout_s, and the final pulse-off writes as much again.
        return 2 * (self._retries + 1) * self.config.timeout_s + 1.0

    @staticmethod
    def _check_coil(coil: int) -> None:
        if not 0 <= coil <= MAX_COIL:
            raise ValueError(f"coil {coil} outside 0..{MAX_COIL}")

    # --- module thread ---------------------------------------------------

    def _session(self) -> str:
        if self._client is None:
            self._client = ModbusSerialClient(
                self.config.port,
                baudrate=self.config.baudrate,
                timeout=self.config.timeout_s,
                retries=self._retries,  # low: a dead bus must show as offline within about a second
                name=f"io-{self.config.id}",
                trace_packet=self._trace_packet,
            )
        try:
            self._connect()
            while not self._stop.is_set():
                self._serve_once()
        except Exception as exc:  # any failure (pymodbus, OS, BusError) is the bus going away: retry later
            self._disconnect()
            return f"{type(exc).__name__}: {exc}"
        return ""

    def _connect(self) -> None:
        assert self._client is not None
        self._client.close()
        if not self._client.connect():
            raise BusError(f"cannot open {self.config.port}")
        self._connected = True
        self._written.clear()  # the module may have lost power: assume nothing about its coils
        self._expire_pulses(time.monotonic())  # a pulse that ended during the outage is never replayed
        self._sync_coils()  # re-apply held states; turn off pulses that ended while offline
        if self.config.inputs:
            inputs = self._read_inputs()
        else:
            self._probe()
            inputs = []
        self._set_online(True)
        self._inputs = inputs
        for index, active in enumerate(inputs):  # the initial state, once per (re)connect
            self._send(DoorInput(io=self.config.id, input=index, active=active))
        self._next_poll = time.monotonic() + self.config.poll_ms / 1000.0

    def _disconnect(self) -> None:
        self._connected = False
        self._inputs = None
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # the device may be gone already
                pass

    def _serve_once(self) -> None:
        deadline = min(self._next_poll, min(self._pulse_end.values(), default=math.inf))
        self._take_commands(max(0.0, deadline - time.monotonic()))
        if self._stop.is_set():
            return
        self._expire_pulses(time.monotonic())
        self._sync_coils()
        self._release_senders()  # a pulse that needed no write (already on) releases its caller too
        if time.monotonic() >= self._next_poll:
            self._poll()
            self._next_poll = time.monotonic() + self.config.poll_ms / 1000.0

    def _pause(self, seconds: float) -> bool:
        """Back off before reconnecting, still taking commands so the state is right when the bus returns."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._take_commands(remaining)
        return False

    def _take_commands(self, timeout: float) -> None:
        """Wait up to `timeout` for a command, then apply every command queued."""
        try:
            command = self._commands.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if command is not None:
                self._apply(command)
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # Called by pymodbus just before a request goes to the port: coil writes go
        # out before any poll, so the first request after a pulse is its ON write.
        if sending:
            self._release_senders()
        return data

    def _release_senders(self) -> None:
        for event in self._awaiting_send:
            event.set()
        self._awaiting_send.clear()

    def _apply(self, command: _Command) -> None:
        self._known.add(command.coil)
        if isinstance(command, _Pulse):
            self._awaiting_send.append(command.sent)
            self._pulse_end[command.coil] = max(self._pulse_end.get(command.coil, 0.0), command.end)
        else:
            self._held[command.coil] = command.on
            self._pulse_end.pop(command.coil, None)

    def _expire_pulses(self, now: float) -> None:
        for coil in [c for c, end in self._pulse_end.items() if end <= now]:
            del self._pulse_end[coil]

    def _desired(self, coil: int) -> bool:
        return self._held.get(coil, False) or coil in self._pulse_end

    def _sync_coils(self) -> None:
        """Write every coil whose wanted state differs from what was written, ON writes first."""
        unknown_off = [c for c in self._known if c not in self._written and not self._desired(c)]
        if unknown_off:
            self._read_resting_coils(unknown_off)
        pending = [c for c in self._known if self._written.get(c) != self._desired(c)]
        pending.sort(key=lambda c: not self._desired(c))  # an unlock waits for no relock
        for coil in pending:
            value = self._desired(coil)
            self._written.pop(coil, None)  # unknown until the module confirms
            self._check(self._client_or_fail().write_coil(coil, value, device_id=self.config.unit), "write coil")
            self._written[coil] = value

    def _poll(self) -> None:
        if not self.config.inputs:
            self._probe()
            return
        inputs = self._read_inputs()
        previous = self._inputs
        self._inputs = inputs
        for index, active in enumerate(inputs):
            if previous is None or previous[index] != active:
                self._send(DoorInput(io=self.config.id, input=index, active=active))

    def _read_inputs(self) -> list[bool]:
        count = self.config.inputs
        response = self._client_or_fail().read_discrete_inputs(0, count=count, device_id=self.config.unit)
        self._check(response, "read inputs")
        bits = list(response.bits)
        if len(bits) < count:
            raise BusError(f"read inputs: {len(bits)} bits returned, {count} asked")
        return [bool(b) for b in bits[:count]]

    def _read_resting_coils(self, resting: list[int]) -> None:
        """Read coils that should be off and whose state is unknown: only those found on get an OFF write
        (e.g. a lock left on by a pulse that a crash of the gateway cut short: the gateway releases every
        lock at start, which writes nothing to a board whose relays are already off)."""
        resting = sorted(resting)
        first, count = resting[0], resting[-1] - resting[0] + 1
        if count > MAX_READ_COILS:  # far apart: one read each
            for coil in resting:
                self._read_resting_coils_range(coil, 1, [coil])
        else:
            self._read_resting_coils_range(first, count, resting)

    def _read_resting_coils_range(self, first: int, count: int, coils: list[int]) -> None:
        response = self._client_or_fail().read_coils(first, count=count, device_id=self.config.unit)
        self._check(response, "read coils")
        bits = list(response.bits)
        for coil in coils:
            if coil - first < len(bits):
                self._written[coil] = bool(bits[coil - first])

    def _probe(self) -> None:
        """A module with no inputs is still polled (coil 0), so that its loss is noticed."""
        self._check(self._client_or_fail().read_coils(0, count=1, device_id=self.config.unit), "probe")

    def _client_or_fail(self) -> ModbusSerialClient:
        if self._client is None or not self._connected:
            raise BusError("not connected")
        return self._client

    @staticmethod
    def _check(response: ModbusPDU | None, what: str) -> None:
        if response is None:
            raise BusError(f"{what}: no response")
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise BusError(f"{what}: exception response (code {code})")

    def _thread_exit(self) -> None:
        """On stop: end running pulses now rather than leave a door unlocked; keep held coils."""
        if self._connected and self._pulse_end:
            self._pulse_end.clear()
            try:
                self._sync_coils()
            except Exception as exc:
                log.warning("io %s: could not end pulses on stop: %s", self.config.id, exc)
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
        self._client = None  # the next start() builds a fresh client, as a new thread always did
        self._connected = False

    def _status_event(self, online: bool, error: str | None) -> IoStatus:
        return IoStatus(io=self.config.id, online=online, error=error)

    def _online_detail(self) -> str:
        return f"module {self.config.unit} on {self.config.port} answers"


def probe_io_module(config: IoModuleConfig) -> str | None:
    """For `accessgw check`: None when the module answers a read, else why not."""
    client = ModbusSerialClient(config.port, baudrate=config.baudrate, timeout=config.timeout_s, retries=1)
    try:
        if not client.connect():
            return f"cannot open {config.port}"
        if config.inputs:
            response = client.read_discrete_inputs(0, count=config.inputs, device_id=config.unit)
        else:
            response = client.read_coils(0, count=1, device_id=config.unit)
        ModbusIoModule._check(response, "read")
        return None
    except Exception as exc:  # any failure is the answer the installer needs
        return f"no answer from unit {config.unit}: {exc}"
    finally:
        client.close()
