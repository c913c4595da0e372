"""The gateway as its own process (`python -m gateway run`, unchanged), for tests and benchmarks.

    peers = DoorPeers(tmp / "ports")                          # a card reader and a relay board on socat ptys
    gw = GatewayProcess(tmp, gateway_config(tmp / "data", broker.port, **peers.sections(pulse_ms=300)))
    gw.start()                                                # config written, spawned, ready (log + API)
    token = gw.admin_token()
    with gw.client(token) as c: c.get("/api/v1/doors")
    gw.stop()                                                 # SIGTERM, then kill; or gw.kill() (SIGKILL)
    peers.close()

Ready means: the log says "running:" (since this start, so a restart on the same log counts only
its own line) and the API child answers GET /api/v1/health (every gateway runs one).
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from drivers.simulators import SimulatedCardReader, SimulatedRelayBoard, VirtualSerialLink
from testing.peers import free_port, port_answers, wait_until

ROOT = Path(__file__).resolve().parents[1]
API = "/api/v1"


def gateway_config(
    data_dir: Path,
    broker_port: int,
    *,
    gateway_id: str = "gw-test",
    mqtt: dict[str, Any] | None = None,
    api: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A config for tests: loopback broker with a 1 s reconnect cap, the API on a free loopback port,
    no devices unless `sections` (readers, io_modules, doors, cameras, timezone, …) say so.
    `mqtt` and `api` are merged into those defaults."""
    return {
        "gateway_id": gateway_id,
        "data_dir": str(data_dir),
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "reconnect_max_s": 1, **(mqtt or {})},
        "api": {"host": "127.0.0.1", "port": free_port(), **(api or {})},
        "readers": [],
        "io_modules": [],
        "doors": [],
        **sections,
    }


class DoorPeers:
    """A simulated card reader and pymodbus's RTU server as the relay board, each on a socat pty pair.

    The gateway's sides are `reader_port` and `io_port`; `protocol=None` makes no reader (a face door)."""

    def __init__(
        self, folder: Path, *, protocol: str | None = "wiegand-text", baudrate: int = 38400, unit: int = 1
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.protocol = protocol
        self.baudrate = baudrate
        self.unit = unit
        self.reader_port = folder / "reader-gw"
        self.io_port = folder / "io-gw"
        self.reader_link: VirtualSerialLink | None = None
        self.card: SimulatedCardReader | None = None
        if protocol is not None:
            self.reader_link = VirtualSerialLink(folder / "reader-sim", self.reader_port)
        self.io_link = VirtualSerialLink(folder / "io-board", self.io_port)
        self.board = SimulatedRelayBoard(folder / "io-board", baudrate=baudrate, unit=unit)
        self.board.start()
        if protocol is not None:
            self.card = SimulatedCardReader(folder / "reader-sim", protocol)  # type: ignore[arg-type]

    def reader_config(self, **extra: Any) -> dict[str, Any]:
        assert self.protocol is not None, "these peers have no card reader"
        return {"id": "r1", "protocol": self.protocol, "port": str(self.reader_port), "repeat_suppress_ms": 0, **extra}

    def io_config(self, poll_ms: int = 50, **extra: Any) -> dict[str, Any]:
        return {"id": "io1", "port": str(self.io_port), "baudrate": self.baudrate, "unit": self.unit,
                "poll_ms": poll_ms, **extra}  # fmt: skip

    def card_door(self, pulse_ms: int = 500, *, inputs: bool = True, **extra: Any) -> dict[str, Any]:
        """Door `main`: reader r1, lock on coil 0; with `inputs`, contact on input 0 and exit button on input 1."""
        door: dict[str, Any] = {"id": "main", "mode": "card", "reader": "r1",
                                "lock": {"io": "io1", "coil": 0, "pulse_ms": pulse_ms}}  # fmt: skip
        if inputs:
            door |= {"contact": {"io": "io1", "input": 0}, "exit_button": {"io": "io1", "input": 1}}
        return door | extra

    def sections(self, pulse_ms: int = 500, *, poll_ms: int = 50, inputs: bool = True, **door: Any) -> dict[str, Any]:
        """readers, io_modules and doors for gateway_config(): one card door on these peers."""
        return {
            "readers": [self.reader_config()],
            "io_modules": [self.io_config(poll_ms)],
            "doors": [self.card_door(pulse_ms, inputs=inputs, **door)],
        }

    def wait_polled(self, timeout: float = 10) -> None:
        """Until the gateway's I/O thread has asked the board something: the module is online."""
        wait_until(lambda: self.board.request_count > 0, timeout, 0.02, "relay board polled by the gateway")

    def close(self) -> None:
        if self.card is not None:
            self.card.close()
        self.board.stop()
        self.io_link.close()
        if self.reader_link is not None:
            self.reader_link.close()


class GatewayProcess:
    """`python -m gateway run --config F` with its output in a log file.

    `config` stays editable until start() writes it; a restart after stop() or kill() appends to the log."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        *,
        config_name: str = "gateway.yaml",
        log_name: str = "gateway.log",
        new_session: bool = False,
        api_ca: Path | None = None,
    ) -> None:
        self.dir = workdir
        self.api_ca = api_ca  # with api.tls_cert_file: the CA clients verify the API's certificate with
        self.config = config
        self.config_path = workdir / config_name
        self.log_path = workdir / log_name
        self.new_session = new_session  # its own process group: the daemon and its API child, for killpg
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # --- where things are ----------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return Path(self.config["data_dir"])

    @property
    def api_port(self) -> int:
        return int(self.config["api"]["port"])

    @property
    def base(self) -> str:
        """The API's origin, e.g. http://127.0.0.1:PORT, https://… with api.tls_cert_file (routes under /api/v1)."""
        scheme = "https" if self.config["api"].get("tls_cert_file") else "http"
        return f"{scheme}://127.0.0.1:{self.api_port}"

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the API's certificate with: `api_ca` when given."""
        return ssl.create_default_context(cafile=str(self.api_ca)) if self.api_ca is not None else True

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    # --- life cycle ----------------------------------------------------------------------------
    def write_config(self) -> Path:
        """Write `config` to config_path (spawn does it; a CLI command run before the daemon needs it too)."""
        self.config_path.write_text(yaml.safe_dump(self.config))
        return self.config_path

    def spawn(self) -> subprocess.Popen[bytes]:
        """Write the config and start the daemon; returns at once (see wait_ready)."""
        assert not self.running, "the gateway is already running"
        self.write_config()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.config_path)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=self.new_session,
            )  # fmt: skip
        return self.proc

    def wait_ready(self, timeout: float = 60) -> None:
        """Until this start's "running:" line is in the log and /api/v1/health answers 200."""

        def alive() -> None:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise AssertionError(f"gateway exited with {code}:\n{self.log_tail()}")

        def running() -> bool:
            alive()
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                return b"running:" in f.read()

        def healthy() -> bool:
            alive()
            return self.api_answers()

        try:
            wait_until(running, timeout, 0.02, "the gateway's 'running:' line")
            wait_until(healthy, timeout, 0.05, f"{API}/health answering")
        except AssertionError as exc:
            if not self.running:
                raise  # alive() said so, with the log
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def start(self, timeout: float = 60) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def api_answers(self) -> bool:
        try:
            return httpx.get(f"{self.base}{API}/health", timeout=1, verify=self.verify()).status_code == 200
        except httpx.HTTPError:
            return False

    def admin_token(self, timeout: float = 10) -> str:
        """The first start's admin token, from {data_dir}/initial-admin-token."""
        path = self.data_dir / "initial-admin-token"
        try:
            wait_until(path.exists, timeout, 0.02, str(path))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None
        return path.read_text().strip()

    def client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        """An httpx client on the API's origin, with the bearer token when given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=timeout, verify=self.verify())

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait for the exit code; if it is still running after `timeout`, SIGKILL and fail."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc is not None else 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise AssertionError(f"gateway did not stop within {timeout:g} s of SIGTERM") from None

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye. Returns once it is reaped and its API child let go of the port."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        # The API child gets SIGTERM from the kernel when the daemon dies (PR_SET_PDEATHSIG).
        wait_until(lambda: not port_answers(self.api_port), 10, 0.02, "the dead gateway's API port to close")

    def killpg(self) -> None:
        """SIGKILL to the daemon's process group (only with new_session): whatever it spawned too."""
        assert self.new_session and self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
