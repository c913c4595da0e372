"""`accessgw town demo`: a town and two simulated buildings on this machine, for a first look (issue 12).

One supervisor process and its children, each started in its own process group (a Ctrl-C reaches the
supervisor alone, which stops them in order: the buildings drain their outbox into a broker still up) and
asked by the kernel to stop should the supervisor die (PR_SET_PDEATHSIG):

- mosquitto on a free loopback port, persistent in {data_dir}/mosquitto/ (or the broker of `--broker`);
- `accessgw town run` on SQLite, its config written to {data_dir}/town.yaml, its data in {data_dir}/town/;
- two `accessgw run --simulate` buildings, demo-a and demo-b ({data_dir}/demo-a/, …), with the town's
  platform key, each with its simulated reader and relay board and no local demo tenant.

Before the town starts, one demo tenant with a card per building is enrolled in the town's register (as
`accessgw town tenant add` / `card add` do), and the town's first admin is made. Once both buildings hold
the town's roster version (the fleet view), each demo card is swiped once at its building, so the town's
entry search shows two entries. Children's output goes to {data_dir}/logs/. SIGTERM, SIGINT or SIGHUP:
buildings, then the town, then the broker; exit 0.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import click
import yaml

STOP_WAIT_S = 20.0  # a building drains its outbox for up to 5 s; the town commits its batch in hand
START_WAIT_S = 90.0  # a cold start imports face recognition and OpenCV: seconds on a 2-core machine
ACTOR = "town-demo"
DEMO_INSTANCE = "demo"


@dataclass(frozen=True)
class DemoBuilding:
    gateway_id: str
    tenant_id: str
    name: str
    permit: str
    room: str
    card: int


BUILDINGS = (
    DemoBuilding("demo-a", "demo-a-001", "Demo Tenant A", "DEMO-A-PERMIT-001", "101", 10000001),
    DemoBuilding("demo-b", "demo-b-001", "Demo Tenant B", "DEMO-B-PERMIT-001", "201", 20000002),
)


class DemoError(Exception):
    """The demo cannot start or went down; the message is for people."""


class _Stopped(Exception):
    """A stop signal arrived while starting."""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the demo dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only: never through a proxy


def get_json(url: str, token: str | None = None, timeout: float = 3.0) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with _http.open(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        return json.load(response)


def shown(path: Path) -> str:
    """A path as a person in the current folder would type it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class TownDemo:
    def __init__(self, data_dir: Path, *, broker: tuple[str, int] | None = None, town_port: int = 8090,
                 base_port: int = 8081, echo: Callable[[str], None] = click.echo) -> None:  # fmt: skip
        self.data_dir = Path(data_dir).resolve()
        self.external_broker = broker
        self.broker: tuple[str, int] = broker or ("127.0.0.1", 0)
        self.town_port = town_port
        self.ports = {b.gateway_id: base_port + i for i, b in enumerate(BUILDINGS)}
        self.echo = echo
        self.logs = self.data_dir / "logs"
        self.town_yaml = self.data_dir / "town.yaml"
        self.town_data = self.data_dir / "town"
        self.children: list[Child] = []
        self._stop = threading.Event()
        self._log_files: list[IO[bytes]] = []

    # --- the whole run ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, wait for a stop signal (0) or a child's death (1), then stop everything."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self._stop.set())
        code = 0
        try:
            self.start()
            code = self.supervise()
        except _Stopped:
            code = 0
        except DemoError as exc:
            self.echo(f"error: {exc}")
            code = 1
        finally:
            self.stop()
        return code

    def start(self) -> None:
        self._check_ports()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        if self.external_broker is None:
            self._start_mosquitto()
        elif not port_answers(*self.external_broker):
            raise DemoError(f"no broker answers on {self.external_broker[0]}:{self.external_broker[1]}")
        cfg = self._write_town_config()
        public_key, town_token = self._prepare_town(cfg)
        self.echo(f"starting the town (SQLite in {shown(self.town_data)}) on http://127.0.0.1:{self.town_port}/")
        town = self._spawn("town", [sys.executable, "-m", "gateway", "town", "run", "--config", str(self.town_yaml)])
        self._wait(lambda: self._health(self.town_port), town, "the town's API")
        for b in BUILDINGS:
            self.echo(f"starting building {b.gateway_id} (simulated reader and relay board) on "
                      f"http://127.0.0.1:{self.ports[b.gateway_id]}/")  # fmt: skip
            self._spawn(b.gateway_id, [
                sys.executable, "-m", "gateway", "run", "--simulate", "--data-dir", str(self.building_dir(b)),
                "--gateway-id", b.gateway_id, "--api-port", str(self.ports[b.gateway_id]),
                "--broker", f"{self.broker[0]}:{self.broker[1]}", "--platform-key", public_key, "--no-demo-tenant",
            ])  # fmt: skip
        tokens = {}
        for child, b in zip(self.children[-len(BUILDINGS) :], BUILDINGS, strict=True):
            self._wait(lambda b=b: self._health(self.ports[b.gateway_id]), child, f"{b.gateway_id}'s API")
            token_file = self.building_dir(b) / "initial-admin-token"
            self._wait(token_file.exists, child, f"{b.gateway_id}'s admin token")
            tokens[b.gateway_id] = token_file.read_text().strip()
        self.echo("waiting for both buildings to hold the roster the town pushes them …")
        self._wait(lambda: self._fleet_ready(town_token), town, "both buildings online at the town's roster version")
        self._swipe_demo_cards()
        self._summary(town_token, tokens)

    def supervise(self) -> int:
        while not self._stop.wait(0.5):
            for child in self.children:
                if child.proc.poll() is not None:
                    self.echo(f"error: {child.name} exited with status {child.proc.returncode}; the last lines of "
                              f"{shown(child.log)}:\n{self._tail(child.log)}")  # fmt: skip
                    return 1
        return 0

    def stop(self) -> None:
        """Buildings (they drain into the broker), then the town, then the broker; each by SIGTERM."""
        if self.children:
            self.echo("stopping: buildings, town, broker …")
        services = ("town", "mosquitto")
        buildings = [c for c in self.children if c.name not in services]
        for child in buildings:  # together: each drains its outbox for up to 5 s
            self._signal(child, signal.SIGTERM)
        for child in buildings:
            self._reap(child)
        for name in services:
            for child in (c for c in self.children if c.name == name):
                self._signal(child, signal.SIGTERM)
                self._reap(child)
        if self.children:
            self.echo("stopped")
        self.children.clear()
        for f in self._log_files:
            f.close()
        self._log_files.clear()

    # --- children ----------------------------------------------------------------------------------------
    def building_dir(self, b: DemoBuilding) -> Path:
        return self.data_dir / b.gateway_id

    def _spawn(self, name: str, argv: list[str]) -> Child:
        log_path = self.logs / f"{name}.log"
        log = log_path.open("ab")
        self._log_files.append(log)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=os.environ | {"PYTHONUNBUFFERED": "1"}, start_new_session=True,
                                preexec_fn=_die_with_parent)  # fmt: skip
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    @staticmethod
    def _signal(child: Child, sig: int) -> None:
        if child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(sig)

    def _reap(self, child: Child) -> None:
        try:
            child.proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.echo(f"{child.name} did not stop within {STOP_WAIT_S:.0f} s: killed")
            child.proc.kill()
            child.proc.wait(5)
        # What it started and left behind (its API process, socat), if it died without stopping them.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, signal.SIGTERM)

    def _wait(self, ready: Callable[[], Any], child: Child, what: str, timeout: float = START_WAIT_S) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            if self._stop.is_set():
                raise _Stopped
            if child.proc.poll() is not None:
                raise DemoError(f"{child.name} exited with status {child.proc.returncode} while waiting for {what}; "
                                f"the last lines of {shown(child.log)}:\n{self._tail(child.log)}")  # fmt: skip
            value = ready()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DemoError(f"no {what} after {timeout:.0f} s; see {shown(child.log)}:\n{self._tail(child.log)}")
            self._stop.wait(0.2)

    @staticmethod
    def _tail(path: Path, lines: int = 15) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _check_ports(self) -> None:
        for what, port in (("the town", self.town_port), *self.ports.items()):
            if port_answers("127.0.0.1", port):
                raise DemoError(f"127.0.0.1:{port} (for {what}) is in use: stop what listens there (another demo?) "
                                "or choose other ports with --town-port / --base-port")  # fmt: skip

    # --- the broker ------------------------------------------------------------------------------------
    def _start_mosquitto(self) -> None:
        exe = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                                 if Path(p).exists()), None)  # fmt: skip
        if exe is None:
            raise DemoError("mosquitto is not installed: `sudo apt-get install mosquitto` (`./install.sh --test` "
                            "installs it too), or give a running broker with --broker HOST:PORT")  # fmt: skip
        folder = self.data_dir / "mosquitto"
        folder.mkdir(exist_ok=True)
        port = free_port()
        conf = folder / "mosquitto.conf"
        # `user`: started as root, mosquitto would drop to the "mosquitto" user and then fail to write this
        # (0700) folder; as anyone else the line has no effect.
        conf.write_text(
            "# Written by `accessgw town demo` at every start: a loopback broker without authentication,\n"
            "# for the demo only (the town's real broker: config/mosquitto/).\n"
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {folder}/\nautosave_interval 10\n"
            f"max_queued_messages 1000000\nuser {getpass.getuser()}\n"
            f"log_dest file {folder}/mosquitto.log\nlog_type error\nlog_type warning\nlog_type notice\n"
        )
        self.broker = ("127.0.0.1", port)
        self.echo(f"starting mosquitto on 127.0.0.1:{port} (persistent in {shown(folder)})")
        child = self._spawn("mosquitto", [exe, "-c", str(conf)])
        self._wait(lambda: port_answers("127.0.0.1", port), child, "mosquitto listening", timeout=15)

    # --- the town ---------------------------------------------------------------------------------------
    def _write_town_config(self) -> Any:
        from config.town import TownConfig

        body = {
            "instance": DEMO_INSTANCE,
            "data_dir": str(self.town_data),
            "mqtt": {"host": self.broker[0], "port": self.broker[1], "reconnect_max_s": 2},
            "api": {"host": "127.0.0.1", "port": self.town_port},
            "roster": {"resend_s": 1.0},
        }
        cfg = TownConfig.model_validate(body)
        self.town_yaml.write_text("# Written by `accessgw town demo` at every start (SQLite, the demo's broker).\n"
                                  + yaml.safe_dump(body, sort_keys=False))  # fmt: skip
        return cfg

    def _prepare_town(self, cfg: Any) -> tuple[str, str]:
        """The platform key, an admin token, and the demo tenants with their cards in the register.

        Done here, before `town run` starts, so that a first start and the next ones look the same."""
        from gateway.api.users import INITIAL_TOKEN_FILE, create_user, ensure_initial_admin
        from town import register
        from town.keys import load_or_create_key, public_key_b64
        from town.store.db import open_town_store
        from town.store.models import TownCard, TownTenant

        public_key = public_key_b64(load_or_create_key(cfg.data_dir))
        token_file = cfg.data_dir / INITIAL_TOKEN_FILE
        today = date.today()
        engine, sessions = open_town_store(cfg)
        try:
            with sessions.begin() as s:
                token = ensure_initial_admin(s, cfg.data_dir)
                if token is None and not token_file.exists():  # an admin exists, its token file is gone
                    token = create_user(s, f"demo-admin-{secrets.token_hex(2)}", "admin", ACTOR)
                    with open(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                        f.write(token + "\n")
                for b in BUILDINGS:
                    tenant = s.get(TownTenant, b.tenant_id)
                    if tenant is not None and tenant.status != "active":  # suspended or revoked at a former run
                        register.set_status(s, ACTOR, b.tenant_id, "active", reason="town demo start",
                                            route="cli town demo")  # fmt: skip
                        self.echo(f"tenant {b.tenant_id} made active again in the town's register")
                    if tenant is None:
                        register.add_tenant(s, ACTOR, gateway_id=b.gateway_id, id=b.tenant_id, name=b.name,
                                            permit=b.permit, valid_from=today - timedelta(days=1),
                                            valid_to=today + timedelta(days=365), room=b.room,
                                            route="cli town demo")  # fmt: skip
                        self.echo(f"enrolled tenant {b.tenant_id} at {b.gateway_id} in the town's register")
                    if s.get(TownCard, b.card) is None:
                        register.add_card(s, ACTOR, b.tenant_id, b.card, route="cli town demo")
        finally:
            engine.dispose()
        return public_key, token or token_file.read_text().strip()

    def _health(self, port: int) -> bool:
        try:
            return get_json(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).get("status") == "ok"
        except (OSError, ValueError):
            return False

    def _fleet_ready(self, token: str) -> bool:
        try:
            fleet = {g["gateway_id"]: g for g in get_json(f"http://127.0.0.1:{self.town_port}/api/v1/gateways", token)}
        except (OSError, ValueError):
            return False
        return all(
            (g := fleet.get(b.gateway_id)) is not None and g["availability"] == "online"
            and g["target_version"] > 0 and g["roster_version"] == g["target_version"]
            for b in BUILDINGS
        )  # fmt: skip

    def _swipe_demo_cards(self) -> None:
        from drivers.simulators import SimulatedCardReader
        from gateway.simulation import reader_port

        for b in BUILDINGS:
            with SimulatedCardReader(reader_port(self.building_dir(b)), "wiegand-text") as reader:
                reader.swipe(b.card, 34)
            self.echo(f"swiped card {b.card} ({b.tenant_id}) at {b.gateway_id}")

    def _summary(self, town_token: str, tokens: dict[str, str]) -> None:
        exe = sys.argv[0] if Path(sys.argv[0]).name == "accessgw" else "accessgw"
        a, b = BUILDINGS
        self.echo("")
        self.echo(f"town    http://127.0.0.1:{self.town_port}/  admin token: {town_token}")
        for x in BUILDINGS:
            self.echo(f"{x.gateway_id:<7} http://127.0.0.1:{self.ports[x.gateway_id]}/  admin token: "
                      f"{tokens[x.gateway_id]}  (tenant {x.tenant_id}, card {x.card})")  # fmt: skip
        self.echo(f"broker  {self.broker[0]}:{self.broker[1]}   logs: {shown(self.logs)}/   "
                  f"town config: {shown(self.town_yaml)}")  # fmt: skip
        self.echo(f"try:    {exe} simulate swipe --data-dir {shown(self.building_dir(a))} --number {a.card}   "
                  f"(granted; --number {b.card} there: unknown_card) | "
                  f"{exe} town tenant suspend --config {shown(self.town_yaml)} --id {a.tenant_id} | "
                  f"{exe} entries --config {shown(self.building_dir(a) / 'sim' / 'gateway.yaml')}")  # fmt: skip
        self.echo("The town's Entries page shows one entry from each building. Ctrl-C stops everything.")
