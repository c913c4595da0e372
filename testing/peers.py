"""Real local peers for tests and benchmarks: a mosquitto broker, an MQTT subscriber, and the two
helpers every harness uses (a free loopback port, bounded waiting on observable state)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005, what: str = "condition"
) -> Any:
    """The first truthy value of `predicate`, polled every `interval`; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")


class Mosquitto:
    """mosquitto on a free loopback port, persistent, restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        self._prepare(workdir)
        self.conf = self.dir / "mosquitto.conf"
        # `user root`: started as root, mosquitto would drop to its own user and
        # then fail to write persistence here (DESIGN §10).
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.dir}/\nautosave_interval 1\nuser root\n"
            f"log_dest file {self.dir}/mosquitto.log\nmax_queued_messages 0\n"
        )

    def _prepare(self, workdir: Path) -> None:
        """The broker program, a free loopback port and a working folder (the config is the caller's)."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto); .ci/run installs it")
        self.exe = exe
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                log = self.dir / "mosquitto.log"  # a config error can stop it before it opens its log
                raise RuntimeError(f"mosquitto exited {proc.returncode}: {log.read_text() if log.exists() else ''}")
            return port_answers(self.port)

        wait_until(listening, 10, 0.05, "mosquitto listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Subscriber:
    """A platform-side consumer with a persistent session, collecting messages."""

    def __init__(self, port: int, topic: str = "#", client_id: str = "test-platform") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_until(self.client.is_connected, 5, what="subscriber connection")

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self._cond.notify_all()

    def payloads(self, suffix: str) -> list[dict[str, Any]]:
        with self._cond:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix)]

    def payloads_under(self, part: str) -> list[dict[str, Any]]:
        """JSON payloads of every topic containing `part` (e.g. "/response/"), in arrival order."""
        with self._cond:
            return [json.loads(p) for t, p, _ in self.messages if part in t]

    def raw(self, suffix: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "messages") -> Any:
        return wait_until(predicate, timeout, what=what)

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
