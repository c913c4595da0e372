"""The `accessgw` command line as an installer and an administrator use it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drivers.simulators import SimulatedRelayBoard, VirtualSerialLink
from testing.peers import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[2]


def accessgw(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({"gateway_id": "cli-test", "data_dir": str(tmp_path / "data")}))
    return path


@pytest.mark.slow  # ~20 CLI runs in fresh interpreters, ~13 s
def test_roster_commands_and_their_errors(config: Path) -> None:
    c = str(config)
    ok = accessgw(
        "tenant",
        "add",
        "--config",
        c,
        "--id",
        "t1",
        "--name",
        "Wang Fang",
        "--permit",
        "440100X",
        "--valid-to",
        "2027-06-30",
        "--room",
        "302",
    )
    assert ok.returncode == 0, ok.stderr
    assert accessgw("card", "add", "--config", c, "--tenant", "t1", "--number", "0x12345678").returncode == 0
    cases = [
        (["card", "add", "--tenant", "ghost", "--number", "5"], "unknown tenant 'ghost'"),
        (["card", "add", "--tenant", "t1", "--number", "305419896"], "already enrolled"),
        (["card", "add", "--tenant", "t1", "--number", "4294967296"], "does not fit in 32 bits"),
        (["card", "add", "--tenant", "t1", "--number", "12abc"], "is not a card number"),
        (["tenant", "add", "--id", "t2", "--name", "N", "--permit", "P2", "--valid-to", "2027-02-30"], "not a date"),
        (
            ["tenant", "add", "--id", "t1", "--name", "N", "--permit", "P3", "--valid-to", "2027-01-01"],
            "already exists",
        ),
        (["tenant", "suspend", "--id", "ghost"], "unknown tenant"),
        (["card", "remove", "--number", "99"], "not enrolled"),
    ]
    for args, message in cases:
        result = accessgw(*args[:2], "--config", c, *args[2:])
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert accessgw("tenant", "suspend", "--config", c, "--id", "t1").stdout.strip() == "tenant t1 is now suspended"
    assert accessgw("card", "remove", "--config", c, "--number", "305419896").returncode == 0
    listing = accessgw("entries", "--config", c, "--since", "2020-01-01")
    assert listing.returncode == 0 and "no entries" in listing.stderr


def test_bad_config_names_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway_id: gw1\nreaders:\n  - id: r1\n    protocol: wiegand-99\n    port: /dev/ttyUSB0\n")
    result = accessgw("run", "--config", str(bad), timeout=30)
    assert result.returncode == 2
    assert f"{bad}:4: readers[0].protocol" in result.stderr, result.stderr
    missing = accessgw("check", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_check_reports_each_device(tmp_path: Path, mosquitto: Mosquitto) -> None:
    io_link = VirtualSerialLink(tmp_path / "io-board", tmp_path / "io-gw")
    board = SimulatedRelayBoard(tmp_path / "io-board", baudrate=38400, unit=3)
    board.start()
    reader_link = VirtualSerialLink(tmp_path / "rd-sim", tmp_path / "rd-gw")
    try:
        cfg = {
            "gateway_id": "chk",
            "data_dir": str(tmp_path / "data"),
            "mqtt": {"port": mosquitto.port},
            "readers": [
                {"id": "r1", "protocol": "wiegand-text", "port": str(tmp_path / "rd-gw")},
                {"id": "r2", "protocol": "rdm6300", "port": str(tmp_path / "missing")},
            ],
            "io_modules": [
                {"id": "io1", "port": str(tmp_path / "io-gw"), "baudrate": 38400, "unit": 3},
                {"id": "io2", "port": str(tmp_path / "io-gw"), "baudrate": 38400, "unit": 9, "timeout_s": 0.3},
            ],
        }
        path = tmp_path / "gw.yaml"
        path.write_text(yaml.safe_dump(cfg))
        result = accessgw("check", "--config", str(path))
        lines = result.stdout.splitlines()
        assert result.returncode == 1
        assert [line.split()[0] for line in lines] == ["ok", "FAIL", "ok", "FAIL", "ok"], result.stdout
        assert "reader r2" in lines[1] and "cannot open" in lines[1]
        assert "io io2" in lines[3] and "unit 9" in lines[3]
        cfg["mqtt"] = {"port": free_port()}
        path.write_text(yaml.safe_dump(cfg))
        assert accessgw("check", "--config", str(path)).stdout.splitlines()[-1].startswith("FAIL  broker")
    finally:
        board.stop()
        io_link.close()
        reader_link.close()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed on this machine")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (ROOT / "systemd" / "accessgw.service").read_text()
    exe = shutil.which("accessgw") or str(Path(sys.executable).with_name("accessgw"))
    unit = unit.replace("/opt/accessgw/.venv/bin/accessgw", exe)
    (tmp_path / "accessgw.service").write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "accessgw.service")], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in result.stderr.splitlines() if "accessgw.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_systemd_unit_bounds_the_service() -> None:
    """Memory, tasks and /proc are bounded for the daemon and its API child together (issue 7)."""
    lines = set((ROOT / "systemd" / "accessgw.service").read_text().splitlines())
    for setting in ("MemoryMax=1536M", "TasksMax=256", "ProtectProc=invisible", "UMask=0077", "NoNewPrivileges=yes"):
        assert setting in lines, setting
