"""Real peers for the drivers: a virtual serial cable, a Modbus RTU relay board, a card reader.

Used by `accessgw run --simulate`, the tests and the benchmarks. They talk to
the drivers through real pseudo-terminals, so framing, timing and unplugging
behave as on a serial line, not as in a mock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import IO, Any, Literal, TypeVar

import serial
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.rdm6300 import encode_rdm6300
from drivers.wiegand import encode_wiegand

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 5.0
_T = TypeVar("_T")


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: socat removes its links on the way out
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(2.0)


class VirtualSerialLink:
    """A null-modem cable between two pty links, made by socat.

    `close()` kills socat, which removes both links: to a driver this is a USB
    adapter being unplugged. `reopen()` plugs it back in (new ptys, same paths).
    """

    def __init__(
        self, a: str | os.PathLike[str], b: str | os.PathLike[str], *, timeout: float = READY_TIMEOUT_S
    ) -> None:
        self.a = str(a)
        self.b = str(b)
        self._timeout = timeout
        self._socat = shutil.which("socat")
        if self._socat is None:
            raise FileNotFoundError("socat is not installed (apt-get install socat): VirtualSerialLink needs it")
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self.reopen()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def reopen(self) -> None:
        """Start socat (again) and wait, bounded, until both links exist."""
        if self.alive:
            return
        for path in (self.a, self.b):
            if os.path.islink(path):
                os.unlink(path)  # a stale link from a killed socat would look like a live port
        assert self._socat is not None
        # No `-d0`: socat 1.7.4 rejects it; without -d it logs only errors anyway.
        # stderr goes to a file, not a pipe: nobody reads it while socat runs, so a pipe could fill or keep
        # a caller's pipeline open.
        errors: IO[bytes] = tempfile.TemporaryFile()
        cmd = [self._socat, f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"]
        # Own session: a Ctrl-C meant for the gateway must not unplug its simulated cables first.
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
        self._proc = proc
        # Safety net: a link forgotten by its owner does not leave socat running after the process.
        self._finalizer = weakref.finalize(self, _stop_process, proc)
        deadline = time.monotonic() + self._timeout
        try:
            while not (os.path.exists(self.a) and os.path.exists(self.b)):
                if proc.poll() is not None:
                    errors.seek(0)
                    message = errors.read().decode(errors="replace").strip()
                    raise RuntimeError(f"socat exited with status {proc.returncode}: {message or 'no message'}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"socat did not create {self.a} and {self.b} within {self._timeout} s")
                time.sleep(0.005)
        except BaseException:
            self.close()
            raise
        finally:
            errors.close()

    def close(self) -> None:
        """Kill socat: both ports disappear."""
        if self._finalizer is not None:
            self._finalizer()  # runs _stop_process once
            self._finalizer = None
        self._proc = None
        for path in (self.a, self.b):
            if os.path.islink(path):
                os.unlink(path)

    def __enter__(self) -> VirtualSerialLink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SimulatedRelayBoard:
    """A Modbus RTU relay/input board: pymodbus's own RTU server on a serial port.

    Coils 0..coils-1 are relays, discrete inputs 0..inputs-1 are door contacts and
    buttons. The server runs in its own thread with its own asyncio loop. If the
    port disappears (the link was closed) the board waits for it and serves again,
    keeping its coil and input state, like a real board on the far side of an
    unplugged adapter.

    Datastore: SimDevice/SimData (pymodbus 3.16's replacement for the deprecated
    ModbusDeviceContext / ModbusSequentialDataBlock, which warn and shift the
    address by one: ModbusSequentialDataBlock(1, ...) is what serves address 0).
    With four separate blocks and bit addressing, SimData(address=0, BITS) is
    client coil / input 0, checked with a real client in tests/drivers.
    """

    def __init__(
        self,
        port: str | os.PathLike[str],
        *,
        coils: int = 8,
        inputs: int = 8,
        unit: int = 1,
        baudrate: int = 9600,
    ) -> None:
        self.port = str(port)
        self.coils_count = coils
        self.inputs_count = inputs
        self.unit = unit
        self.baudrate = baudrate
        self._writes: list[tuple[float, int, bool]] = []
        self._requests = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready: Future[None] = Future()
        # pymodbus's SimCore (internal class, hence Any), kept across server restarts.
        self._context: Any = None
        self._lost = False

    def _device(self) -> SimDevice:
        def bits(count: int) -> list[SimData]:
            return [SimData(0, values=[False] * max(count, 1), datatype=DataType.BITS)]

        def registers() -> list[SimData]:
            return [SimData(0, values=0, datatype=DataType.REGISTERS)]

        # (coils, discrete inputs, holding registers, input registers): separate blocks, one bit per address.
        return SimDevice(self.unit, simdata=(bits(self.coils_count), bits(self.inputs_count), registers(), registers()))

    # --- control, from any thread -------------------------------------

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        if self._thread is not None:
            return
        self._ready = Future()
        self._thread = threading.Thread(target=self._thread_main, name=f"relay-board-{self.unit}", daemon=True)
        self._thread.start()
        self._ready.result(timeout)  # raises what the server raised, or TimeoutError

    def stop(self, timeout: float = READY_TIMEOUT_S) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("relay board on %s did not stop within %.1f s", self.port, timeout)
        self._thread = None

    def coil(self, index: int) -> bool:
        return bool(self._call(self._get(1, index, 1))[0])

    def coils(self) -> list[bool]:
        return [bool(v) for v in self._call(self._get(1, 0, self.coils_count))]

    def set_input(self, index: int, active: bool) -> None:
        if not 0 <= index < self.inputs_count:
            raise IndexError(f"input {index} outside 0..{self.inputs_count - 1}")
        self._call(self._set(2, index, [bool(active)]))

    def write_history(self) -> list[tuple[float, int, bool]]:
        """(time.monotonic() when the request arrived, coil, value) for every coil write, oldest first."""
        with self._lock:
            return list(self._writes)

    def clear_history(self) -> None:
        with self._lock:
            self._writes.clear()

    @property
    def request_count(self) -> int:
        """Requests received for this unit (polls included)."""
        with self._lock:
            return self._requests

    def __enter__(self) -> SimulatedRelayBoard:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- board thread ---------------------------------------------------

    async def _get(self, func_code: int, address: int, count: int) -> list[int] | list[bool]:
        result = await self._context.async_getValues(self.unit, func_code, address, count)
        if not isinstance(result, list):
            raise IndexError(f"address {address} (+{count}) not served: {result!r}")
        return result

    async def _set(self, func_code: int, address: int, values: list[bool]) -> None:
        error = await self._context.async_setValues(self.unit, func_code, address, values)
        if error is not None:
            raise IndexError(f"address {address} not served: {error!r}")

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a datastore access in the board's loop: the datastore is not thread-safe."""
        loop = self._loop
        if loop is None or self._context is None:
            coro.close()
            raise RuntimeError("relay board is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(READY_TIMEOUT_S)

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        # Called as a request is decoded, before it is executed: the moment the write reached the board.
        if not sending and pdu.dev_id == self.unit:
            now = time.monotonic()
            with self._lock:
                self._requests += 1
                if pdu.function_code == 5:
                    self._writes.append((now, pdu.address, bool(pdu.bits[0])))
                elif pdu.function_code == 15:
                    self._writes.extend((now, pdu.address + i, bool(b)) for i, b in enumerate(pdu.bits[: pdu.count]))
        return pdu

    def _trace_connect(self, connected: bool) -> None:
        if not connected:
            self._lost = True  # the port failed under the server: serve it again once it is back

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            else:
                log.exception("relay board on %s failed", self.port)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server: ModbusSerialServer | None = None
        device = self._device()
        try:
            while not self._stopping.is_set():
                if server is not None and (self._lost or not os.path.exists(self.port)):
                    await server.shutdown()
                    server = None
                if server is None and os.path.exists(self.port):
                    server = await self._open(device)
                    if not self._ready.done():
                        self._ready.set_result(None)
                if not self._ready.done() and server is None:
                    raise FileNotFoundError(f"relay board port {self.port} does not exist")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.05)
        finally:
            if server is not None:
                await server.shutdown()
            self._loop = None

    async def _open(self, device: SimDevice) -> ModbusSerialServer | None:
        self._lost = False
        server = ModbusSerialServer(
            device,
            port=self.port,
            baudrate=self.baudrate,
            trace_pdu=self._trace_pdu,
            trace_connect=self._trace_connect,
        )
        if self._context is None:
            self._context = server.context
        else:
            server.context = self._context  # same coils and inputs as before the outage
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as exc:
            if not self._ready.done():
                raise
            log.debug("relay board: %s not ready yet: %s", self.port, exc)
            return None
        return server


Protocol = Literal["wiegand-text", "rdm6300"]


class SimulatedCardReader:
    """Writes card frames to a serial port, as a reader's serial converter would."""

    def __init__(
        self, port: str | os.PathLike[str], protocol: Protocol = "wiegand-text", *, baudrate: int = 9600
    ) -> None:
        if protocol not in ("wiegand-text", "rdm6300"):
            raise ValueError(f"unknown reader protocol {protocol!r}")
        self.port = str(port)
        self.protocol = protocol
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None

    def frame(self, number: int, bits: int = 34) -> bytes:
        """The bytes one swipe sends (`bits` is ignored for rdm6300, which is always 40)."""
        if self.protocol == "rdm6300":
            return encode_rdm6300(number)
        return f"W{bits}:{encode_wiegand(number, bits)}\r\n".encode("ascii")

    def swipe(self, number: int, bits: int = 34) -> None:
        self.write_raw(self.frame(number, bits))

    def write_raw(self, data: bytes) -> None:
        """Write bytes as they are; reopens the port once if it was replugged since the last write."""
        for attempt in (1, 2):
            try:
                if self._serial is None:
                    self._serial = serial.Serial(self.port, self.baudrate, timeout=1, write_timeout=2)
                self._serial.write(data)
                self._serial.flush()
                return
            except (serial.SerialException, OSError):
                self.close()
                if attempt == 2:
                    raise

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(Exception):
                self._serial.close()
            self._serial = None

    def __enter__(self) -> SimulatedCardReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["SimulatedCardReader", "SimulatedRelayBoard", "VirtualSerialLink"]
