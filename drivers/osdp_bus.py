"""One RS-485 bus of OSDP readers: one serial port, one libosdp control panel, one daemon thread.

Several readers on one port are one bus: libosdp's control panel polls them in turn by address.
The thread owns the port and the control panel: it calls `refresh()`, turns libosdp's events into
driver events (CardPresented, BadFrame, ReaderTamper, ReaderStatus) and sends the LED/buzzer
feedback the gateway queued. It never decides anything (DESIGN §2).

Two libosdp facts shape it (DESIGN §10):
- its event handler runs inside `refresh()`; a command is never submitted from there, only from
  the loop between two refreshes (the Python wrapper's ControlPanel deadlocks on exactly that,
  so this module drives libosdp's `osdp_sys.ControlPanel` itself);
- a reader that stops answering is not tried again for 300 s. A reader that is replugged or
  replaced must be back in seconds, so while a reader is down the bus recreates its control
  panel (after RETRY_FIRST_S, then every RETRY_MAX_S): a replaced reader is back within about
  2 x RETRY_MAX_S at worst, usually one period. The other readers of that bus set up their secure
  channel again (about a second), too short to be reported offline.

The secure channel is required: a reader counts as online only while libosdp reports it online
*with* an active secure channel (and `LibFlag.EnforceSecure` keeps libosdp from falling back to a
plain or default-key channel), except in `install_mode`, which lets a factory reader be given its key.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import osdp
import osdp_sys
import serial

from config.models import ReaderConfig
from drivers.events import BadFrame, CardPresented, DriverEvent, ReaderStatus, ReaderTamper
from drivers.frames import FrameError
from drivers.osdp_codec import card_of_read, feedback_commands, tamper_of

log = logging.getLogger(__name__)

REFRESH_S = 0.01  # between two refresh() calls (libosdp's own wrapper waits 20 ms): a read is handed over sooner
CHECK_S = 0.1  # how often the online bitmasks are read
OFFLINE_GRACE_S = 3.0  # not up this long: offline (rides over a recreated control panel's handshake)
STARTUP_GRACE_S = 4.0  # a reader not up this long after start is reported offline
RETRY_FIRST_S = 5.0  # a reader down this long: recreate the control panel ...
# ... then every 10 s while it stays down. Not longer: a reader plugged in while libosdp still probes for
# the old one makes libosdp give up on it for 300 s, and a handshake that fails after a recreation does
# too; each costs one more period (with a 20 s period a replaced reader once took 24 s, bench/osdp_replug.py).
RETRY_MAX_S = 10.0
STOP_TIMEOUT_S = 2.0
QUIET_S = 0.3  # before a control panel starts: longer than OSDP's 200 ms reply time
HEALTHY_AFTER_S = 1.0  # a port that failed after this long open is a new outage: retry from the shortest wait
LOG_LEVEL = osdp.LogLevel.Error  # libosdp writes to stderr (the journal); its routine retries are not news


_HANGUP = select.POLLHUP | select.POLLERR | select.POLLNVAL


class SerialChannel(osdp.Channel):
    """libosdp's byte pipe on a serial port: non-blocking reads and writes on the port's descriptor.

    pyserial opens and configures the port (speed, raw mode). An I/O error (USB adapter unplugged,
    pty closed) is kept in `error` for the bus thread; libosdp itself only sees no data.
    """

    def __init__(self, port: serial.Serial) -> None:
        super().__init__()
        self._fd = port.fileno()
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self.error: str | None = None

    def read(self, max_bytes: int) -> bytes:
        if self.error is not None:
            return b""
        try:
            data = os.read(self._fd, max_bytes)
        except BlockingIOError:
            return b""
        except OSError as exc:
            self.error = str(exc)
            return b""
        # pyserial sets VMIN=0: an empty read is "no data yet", or a hang-up (USB adapter gone), which poll tells.
        if not data and any(mask & _HANGUP for _, mask in self._poll.poll(0)):
            self.error = "the port hung up (device disconnected?)"
        return data

    def write(self, buf: bytes) -> int:
        if self.error is not None:
            return 0
        try:
            return os.write(self._fd, buf)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self.error = str(exc)
            return 0

    def flush(self) -> None:
        return None


@dataclass
class _Pd:
    """What the bus knows of one reader on it."""

    config: ReaderConfig
    index: int  # libosdp's index of this reader in its control panel
    reported: bool | None = None  # online as last reported to the gateway; None: not yet
    last_up: float | None = None  # monotonic time it was last seen up
    down_since: float | None = None  # since when the current control panel has not seen it up
    tamper: bool = False


class OsdpBus:
    """The OSDP readers on one serial port. `emit` is called from the bus thread and must not block."""

    def __init__(
        self,
        port: str,
        readers: Sequence[ReaderConfig],
        emit: Callable[[DriverEvent], None],
        *,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        if not readers or any(r.port != port or r.protocol != "osdp" for r in readers):
            raise ValueError(f"an OSDP bus on {port} takes that port's osdp readers")
        self.port = port
        self.baudrate = readers[0].baudrate
        self._pds = [_Pd(r, i) for i, r in enumerate(readers)]
        self._by_id = {pd.config.id: pd for pd in self._pds}
        self._emit = emit
        self._retry_first, self._retry_max = retry_first_s, retry_max_s
        self._retry = retry_first_s
        self._backoff_max = max(r.reconnect_max_s for r in readers)
        self._commands: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._life = threading.Lock()  # start/stop from several readers' facades
        self._started = 0.0
        self.recreations = 0  # control panels made again for a reader that was down (tests, logs)

    # --- any thread -------------------------------------------------------------------------------

    @property
    def reader_ids(self) -> list[str]:
        return [pd.config.id for pd in self._pds]

    def is_online(self, reader: str) -> bool:
        return bool(self._by_id[reader].reported)

    def feedback(self, reader: str, granted: bool) -> None:
        """Queue the LED and buzzer commands for `reader`; the bus thread sends them. Never blocks."""
        self._commands.put((self._by_id[reader].index, granted))

    def start(self) -> None:
        """Start the bus thread (once: the other readers' start() finds it running)."""
        with self._life:
            if self._thread is not None and self._thread.is_alive():
                if not self._stop.is_set():
                    return
                self._thread.join(STOP_TIMEOUT_S)  # never two threads on one port
                if self._thread.is_alive():
                    raise RuntimeError(f"osdp bus {self.port}: the previous thread is still running")
            self._stop.clear()
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name=f"osdp-{Path(self.port).name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        with self._life:
            self._stop.set()
            thread = self._thread
            if thread is None:
                return
            thread.join(timeout)
            if thread.is_alive():
                log.error("osdp bus %s: thread did not stop within %.1f s", self.port, timeout)
            else:
                self._thread = None

    # --- bus thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        osdp_sys.set_loglevel(LOG_LEVEL)
        backoff = 0.2
        try:
            while not self._stop.is_set():
                opened = time.monotonic()
                try:
                    error = self._session()
                except Exception as exc:  # a driver bug must not end the thread for good
                    log.exception("osdp bus %s: unexpected error", self.port)
                    error = f"{type(exc).__name__}: {exc}"
                if self._stop.is_set():
                    break
                if error is None:
                    continue  # a reader is down: a new control panel at once
                if time.monotonic() - opened >= HEALTHY_AFTER_S:
                    backoff = 0.2
                self._port_lost(error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)
        finally:
            log.debug("osdp bus %s: thread stopped", self.port)

    def _session(self) -> str | None:
        """Open the port, serve one control panel until the port fails (returns why) or a reader
        has been down long enough to recreate the control panel (returns None)."""
        try:
            # Exclusive: a second control panel on the bus (`accessgw check` while the service runs) would
            # break the secure channels of the first; it is told the port is in use instead.
            port = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            return f"cannot open {self.port}: {exc}"
        try:
            # A reply to the previous control panel's last command may still be on its way; read by the new
            # one, it looks like a reply from the wrong address and libosdp drops that reader for 300 s
            # (measured). Wait out the 200 ms a reader has to reply, then throw away what came.
            self._stop.wait(QUIET_S)
            port.reset_input_buffer()
            channel = SerialChannel(port)
            panel = osdp_sys.ControlPanel([self._pd_info(pd, channel) for pd in self._pds])
            panel.set_event_callback(self._on_event)
            try:
                return self._serve(panel, channel)
            finally:
                del panel  # libosdp's context goes before the port it writes to
        finally:
            try:
                port.close()
            except Exception:  # closing a vanished device may fail; it is gone anyway
                pass

    def _pd_info(self, pd: _Pd, channel: SerialChannel) -> dict[str, Any]:
        cfg = pd.config
        if cfg.install_mode:
            log.warning("reader %s: install mode: a reader with the default key gets this scbk; "
                        "turn install_mode off once it is paired", cfg.id)  # fmt: skip
        flags = [osdp.LibFlag.InstallMode] if cfg.install_mode else [osdp.LibFlag.EnforceSecure]
        return osdp.PDInfo(cfg.address, channel, scbk=cfg.scbk_bytes, name=cfg.id, flags=flags).get()

    def _serve(self, panel: Any, channel: SerialChannel) -> str | None:
        for pd in self._pds:
            pd.down_since = None
        next_check = time.monotonic()
        while not self._stop.is_set():
            panel.refresh()
            if channel.error is not None:
                return f"{self.port}: {channel.error}"
            self._send_feedback(panel)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + CHECK_S
                if self._check(panel, now):
                    return None
            self._stop.wait(REFRESH_S)
        return None

    def _check(self, panel: Any, now: float) -> bool:
        """Report changes of each reader's online state; True when the control panel must be made again."""
        up_mask = panel.status() & panel.sc_status()  # online *with* a secure channel
        recreate = False
        for pd in self._pds:
            if up_mask & (1 << pd.index):
                pd.last_up, pd.down_since = now, None
                self._report(pd, True)
                continue
            if pd.down_since is None:
                pd.down_since = now
            seen = pd.last_up if pd.last_up is not None else self._started
            grace = OFFLINE_GRACE_S if pd.last_up is not None else STARTUP_GRACE_S
            if now - seen >= grace:
                self._report(pd, False, self._why_down(pd))
            if now - pd.down_since >= self._retry:
                recreate = True
        if recreate:
            down = [pd.config.id for pd in self._pds if not up_mask & (1 << pd.index)]
            log.info("osdp bus %s: reader(s) %s down for %.0f s: control panel made again (libosdp would wait "
                     "300 s)", self.port, ", ".join(down), self._retry)  # fmt: skip
            self.recreations += 1
            self._retry = min(self._retry * 2, self._retry_max)
        elif all(up_mask & (1 << pd.index) for pd in self._pds):
            self._retry = self._retry_first
        return recreate

    def _why_down(self, pd: _Pd) -> str:
        return (f"no answer with a secure channel from address {pd.config.address} on {self.port} "
                "(unplugged, wrong address or baud rate, or wrong scbk)")  # fmt: skip

    def _port_lost(self, error: str) -> None:
        for pd in self._pds:
            self._report(pd, False, error)

    def _report(self, pd: _Pd, online: bool, error: str | None = None) -> None:
        if pd.reported == online:
            return  # once per change, not on every check
        pd.reported = online
        cfg = pd.config
        if online:
            log.info("reader %s: online (osdp address %d on %s, secure channel)", cfg.id, cfg.address, self.port)
        else:
            log.warning("reader %s: offline: %s", cfg.id, error)
        self._send(ReaderStatus(reader=cfg.id, online=online, error=None if online else error))

    def _send_feedback(self, panel: Any) -> None:
        while True:
            try:
                index, granted = self._commands.get_nowait()
            except queue.Empty:
                return
            pd = self._pds[index]
            if not pd.reported:
                log.info("reader %s offline: feedback (%s) not shown", pd.config.id, "grant" if granted else "refusal")
                continue
            for command in feedback_commands(granted):
                if not panel.submit_command(index, command):
                    log.warning("reader %s: libosdp refused command %s", pd.config.id, command["command"])

    def _on_event(self, index: int, event: dict[str, Any]) -> int:
        """libosdp's event handler, inside refresh(): translate and hand over, never submit a command here."""
        try:
            pd = self._pds[index]
            kind = event.get("event")
            if kind == osdp.Event.CardRead:
                self._card(pd, event)
            elif kind == osdp.Event.Status:
                self._status(pd, event)
        except Exception:  # an odd event must not stop the bus
            log.exception("osdp bus %s: failed to handle event %r", self.port, event)
        return 0

    def _card(self, pd: _Pd, event: dict[str, Any]) -> None:
        reader = pd.config.id
        try:
            card = card_of_read(event)
        except FrameError as exc:
            log.warning("reader %s: bad read (%s): %s", reader, exc.kind, exc.detail)
            self._send(BadFrame(reader=reader, kind=exc.kind, detail=exc.detail))
            return
        self._send(CardPresented(reader=reader, card_number=card.number, card_bits=card.bits))

    def _status(self, pd: _Pd, event: dict[str, Any]) -> None:
        tamper = tamper_of(event)
        if tamper is None or tamper == pd.tamper:
            return  # another report, or the same state again
        pd.tamper = tamper
        log.warning("reader %s: tamper %s", pd.config.id, "active" if tamper else "cleared")
        self._send(ReaderTamper(reader=pd.config.id, active=tamper))

    def _send(self, event: DriverEvent) -> None:
        try:
            self._emit(event)
        except Exception:  # a failing consumer must not stop the bus thread
            log.exception("osdp bus %s: emit failed for %r", self.port, event)
