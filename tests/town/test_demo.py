"""`accessgw town demo` (issue 12) as a newcomer runs it: one command starts mosquitto, the town on SQLite and
two simulated buildings; the demo cards' swipes reach the town; SIGTERM stops every process it started, exit 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from testing.peers import free_port, port_answers, wait_until

pytestmark = pytest.mark.slow  # a broker, the town and two gateway processes

ROOT = Path(__file__).resolve().parents[2]
V1 = "/api/v1"
TOKEN = re.compile(r"^(town|demo-a|demo-b)\s+http://127\.0\.0\.1:(\d+)/\s+admin token: (\S+)")


def two_free_ports() -> int:
    """A port p with p and p + 1 both free (demo-a and demo-b)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and not port_answers(port + 1):
            return port
    raise AssertionError("no two consecutive free ports")


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, grandchildren: socat, the gateways' API processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Output:
    """The demo's stdout, line by line, read in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.stamps: list[float] = []
        assert proc.stdout is not None
        self._stdout = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stdout:
            self.lines.append(line.rstrip("\n"))
            self.stamps.append(time.monotonic())

    def text(self) -> str:
        return "\n".join(self.lines)

    def tokens(self) -> dict[str, tuple[int, str]]:
        found = (TOKEN.match(line) for line in list(self.lines))
        return {m.group(1): (int(m.group(2)), m.group(3)) for m in found if m}


def test_town_demo_two_buildings_entries_reach_the_town_and_sigterm_stops_everything(tmp_path: Path) -> None:
    town_port, base_port = free_port(), two_free_ports()
    data_dir = tmp_path / "town-demo"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "town", "demo", "--data-dir", str(data_dir),
         "--town-port", str(town_port), "--base-port", str(base_port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    out = Output(proc)
    seen: set[int] = set()
    try:

        def printed() -> bool:
            assert proc.poll() is None, f"the demo exited {proc.returncode}:\n{out.text()}"
            seen.update(descendants(proc.pid))
            return len(out.tokens()) == 3 and any("Ctrl-C stops everything" in line for line in out.lines)

        wait_until(printed, 100, 0.1, "the demo's addresses and tokens")
        swiped = [t for line, t in zip(out.lines, out.stamps, strict=False) if line.startswith("swiped card")]
        print(f"demo cards swiped {swiped[-1] - started:.1f} s after the start (cold start included)")
        tokens = out.tokens()
        assert tokens["town"][0] == town_port
        assert (tokens["demo-a"][0], tokens["demo-b"][0]) == (base_port, base_port + 1)
        text = out.text()
        assert f"simulate swipe --data-dir {Path('town-demo') / 'demo-a'} --number 10000001" in text, text
        assert (data_dir / "town.yaml").exists() and (data_dir / "town" / "town.db").exists()  # SQLite

        with httpx.Client(base_url=f"http://127.0.0.1:{town_port}", timeout=10,
                          headers={"Authorization": f"Bearer {tokens['town'][1]}"}) as town:  # fmt: skip

            def two_entries() -> list[dict]:
                r = town.get(f"{V1}/entries", params={"limit": 50})
                assert r.status_code == 200, r.text
                items = r.json()["items"]
                return items if {e["gateway_id"] for e in items} >= {"demo-a", "demo-b"} else []

            entries = wait_until(two_entries, 15, 0.2, "an entry of each building at the town")
            assert len(entries) == 2, entries
            by_gateway = {e["gateway_id"]: e for e in entries}
            assert by_gateway["demo-a"]["card_number"] == 10000001 and by_gateway["demo-a"]["tenant_id"] == "demo-a-001"
            assert by_gateway["demo-b"]["card_number"] == 20000002 and by_gateway["demo-b"]["tenant_id"] == "demo-b-001"
            assert {e["decision"] for e in entries} == {"granted"}, entries

            r = town.get(f"{V1}/gateways")
            assert r.status_code == 200, r.text
            fleet = {g["gateway_id"]: g for g in r.json()}
            assert set(fleet) == {"demo-a", "demo-b"}, fleet
            for g in fleet.values():
                assert g["availability"] == "online", g
                assert g["roster_version"] == g["target_version"] >= 2, g

        def depths() -> list[int]:  # the demo's buildings keep events until the town's receipt names them
            return [httpx.get(f"http://127.0.0.1:{tokens[n][0]}{V1}/ready", timeout=5).json()["outbox_depth"]
                    for n in ("demo-a", "demo-b")]  # fmt: skip

        wait_until(lambda: depths() == [0, 0], 15, 0.2, "both outboxes emptied by the town's receipts")
        for name in ("demo-a", "demo-b"):  # each building's page takes its printed token
            port, token = tokens[name]
            r = httpx.get(f"http://127.0.0.1:{port}{V1}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert r.status_code == 200, r.text

        seen.update(descendants(proc.pid))
        assert len(seen) >= 4, seen  # mosquitto, the town, two gateways (and what the gateways started)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, out.text()
        wait_until(lambda: not any(alive(p) for p in seen), 10, 0.1, "every process of the demo gone")
        assert out.lines[-1] == "stopped", out.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in seen:  # a failed test leaves nothing running
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
