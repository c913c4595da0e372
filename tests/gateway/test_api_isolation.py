"""The API cannot take the doors down (issue 7): it runs in a child process that the doors restart,
and a request body costs nothing before its sender is known and its size allowed."""

from __future__ import annotations

import os
import select
import signal
import socket
import sqlite3
import stat
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from testing.peers import Mosquitto, wait_until
from tests.gateway.rig import Rig

pytestmark = pytest.mark.slow
VALID_TO = date.today() + timedelta(days=30)


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto, pulse_ms=200)
    try:
        yield r
    finally:
        r.close()


def api_pid(rig: Rig) -> int | None:
    """The daemon's child running gateway.api.process."""
    assert rig.proc is not None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat_fields[1]) == rig.proc.pid and b"gateway.api.process" in cmdline:
            return int(entry.name)
    return None


def swipe_opens(rig: Rig, number: int) -> None:
    before = sum(1 for w in rig.board.write_history() if w[1] == 0 and w[2])
    rig.card.swipe(number, 34)
    wait_until(lambda: sum(1 for w in rig.board.write_history() if w[1] == 0 and w[2]) > before, 5,
               what="relay ON write")  # fmt: skip


def raw_post(port: int, path: str, length: int, headers: dict[str, str] | None = None) -> tuple[int, int]:
    """POST announcing `length` body bytes, sending them until the server answers.

    Returns (status, body bytes sent before the answer). A server that reads the body first
    would take all of it before answering."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
    chunk = b"x" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if sent < length else [], [], 0.5)
            if readable:
                answer = sock.recv(4096)
                assert answer.startswith(b"HTTP/1.1 "), answer
                return int(answer.split()[1]), sent
            if writable:
                try:
                    sent += sock.send(chunk[: length - sent])
                except (BrokenPipeError, ConnectionResetError):
                    break
        answer = sock.recv(4096)
        return int(answer.split()[1]), sent


def test_a_killed_api_process_costs_no_door_and_comes_back(rig: Rig) -> None:
    rig.enrol("t1", 4242, valid_to=VALID_TO)
    rig.start()
    first = api_pid(rig)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    swipe_opens(rig, 4242)  # at once, while the API is down
    wait_until(rig.api_answers, 20, 0.1, "API back")
    second = api_pid(rig)
    assert second not in (None, first)
    assert "API process exited (killed by SIGKILL)" in rig.log()
    swipe_opens(rig, 4242)
    assert rig.proc is not None and rig.proc.poll() is None


def test_the_api_process_runs_behind_the_doors_and_dies_with_them(rig: Rig) -> None:
    rig.start()
    child = api_pid(rig)
    assert child is not None
    assert os.getpriority(os.PRIO_PROCESS, child) >= os.getpriority(os.PRIO_PROCESS, rig.proc.pid) + 10  # type: ignore[union-attr]
    assert int(Path(f"/proc/{child}/oom_score_adj").read_text()) >= 500
    if os.geteuid() == 0:  # root may give the door's loop thread the real-time class; the API never has it
        assert os.sched_getscheduler(rig.proc.pid) & ~os.SCHED_RESET_ON_FORK == os.SCHED_RR  # type: ignore[union-attr]
        assert os.sched_getscheduler(child) == os.SCHED_OTHER
        assert "door threads real-time (SCHED_RR)" in rig.log()
    rig.kill()  # SIGKILL: no chance to stop the child in order
    wait_until(lambda: not Path(f"/proc/{child}").exists() or b"Z" in Path(f"/proc/{child}/stat").read_bytes()[:80],
               10, 0.05, "API process gone with the doors")  # fmt: skip


def test_bodies_cost_nothing_before_auth_and_size_are_checked(rig: Rig) -> None:
    rig.start()
    port = rig.api_port
    token = (rig.data_dir / "initial-admin-token").read_text().strip()
    status, sent = raw_post(port, "/api/v1/tenants", 200 * 1024 * 1024)
    assert status == 401 and sent < 8 * 1024 * 1024, (status, sent)
    status, sent = raw_post(port, "/api/v1/tenants", 200 * 1024 * 1024, {"Authorization": "Bearer nonsense"})
    assert status == 401 and sent < 8 * 1024 * 1024
    status, sent = raw_post(port, "/api/v1/tenants", 100 * 1024 * 1024, {"Authorization": f"Bearer {token}"})
    assert status == 413 and sent < 8 * 1024 * 1024  # what fits in the sockets' buffers, not the body
    status, sent = raw_post(port, "/api/v1/tenants/t1/faces", 200 * 1024 * 1024, {"Authorization": f"Bearer {token}"})
    assert status == 413 and sent < 8 * 1024 * 1024
    # Chunked bodies announce no size: refused before they are read.
    with httpx.Client(base_url=f"{rig.base}/api/v1", headers={"Authorization": f"Bearer {token}"}) as c:
        r = c.post("/tenants", content=iter([b'{"id": "x"}']), headers={"Content-Type": "application/json"})
        assert r.status_code == 411 and r.json()["error"]["code"] == "length_required"
        # A small body with a valid token goes through as before.
        r = c.post("/tenants", json={"id": "t9", "name": "Nine", "permit_number": "P9", "valid_to": "2030-01-01"})
        assert r.status_code == 201, r.text
    assert rig.proc is not None and rig.proc.poll() is None


def test_data_files_are_private_whatever_the_umask(rig: Rig) -> None:
    old = os.umask(0o022)
    try:
        rig.start()
    finally:
        os.umask(old)
    assert stat.S_IMODE(rig.data_dir.stat().st_mode) == 0o700
    for name in ("gateway.sqlite3", "gateway.sqlite3-wal", "gateway.sqlite3-shm", "initial-admin-token"):
        assert stat.S_IMODE((rig.data_dir / name).stat().st_mode) == 0o600, name
    sqlite3.connect(rig.data_dir / "gateway.sqlite3").close()
