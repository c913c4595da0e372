"""The simulators themselves: they are the peers other tests and benchmarks trust."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import serial
from pymodbus.client import ModbusSerialClient

from drivers import simulators
from drivers.rdm6300 import decode_rdm6300
from drivers.simulators import SimulatedCardReader, SimulatedRelayBoard, VirtualSerialLink


def test_link_carries_bytes_both_ways_and_unplugs(tmp_path) -> None:
    link = VirtualSerialLink(tmp_path / "a", tmp_path / "b")
    try:
        with serial.Serial(link.a, timeout=1) as a, serial.Serial(link.b, timeout=1) as b:
            a.write(b"ping")
            assert b.read(4) == b"ping"
            b.write(b"pong")
            assert a.read(4) == b"pong"
        link.close()
        assert not os.path.lexists(link.a) and not os.path.lexists(link.b)
        assert not link.alive
        link.reopen()
        assert os.path.exists(link.a) and os.path.exists(link.b)
        with serial.Serial(link.a, timeout=1) as a, serial.Serial(link.b, timeout=1) as b:
            a.write(b"again")
            assert b.read(5) == b"again"
    finally:
        link.close()


def test_socat_missing_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(simulators.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="socat is not installed"):
        VirtualSerialLink(tmp_path / "a", tmp_path / "b")


def test_socat_failure_is_reported(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="socat exited"):
        VirtualSerialLink(tmp_path / "no-such-dir" / "a", tmp_path / "b")
    ps = ["ps", "-o", "comm=", "--ppid", str(os.getpid())]
    children = subprocess.run(ps, capture_output=True, text=True, timeout=5).stdout
    assert "socat" not in children  # the failed attempt left no process behind


def test_card_reader_frames(tmp_path) -> None:
    assert SimulatedCardReader(tmp_path / "x").frame(1, 34) == b"W34:" + b"0" * 32 + b"10\r\n"
    assert decode_rdm6300(SimulatedCardReader(tmp_path / "x", "rdm6300").frame(0xE3086CED)) == (0xE3086CED, 40)
    with pytest.raises(ValueError):
        SimulatedCardReader(tmp_path / "x", "osdp")  # type: ignore[arg-type]


def test_board_on_missing_port_fails_to_start(tmp_path) -> None:
    board = SimulatedRelayBoard(tmp_path / "none")
    with pytest.raises(FileNotFoundError):
        board.start(timeout=3)
    board.stop()


def test_board_keeps_state_and_serves_again_after_replug(make_link, make_board) -> None:
    link = make_link("replug")
    board = make_board(link.b, coils=4, inputs=4)
    board.set_input(1, True)
    assert [board.coil(i) for i in range(4)] == [False] * 4
    link.close()
    time.sleep(0.2)
    link.reopen()
    client = ModbusSerialClient(link.a, timeout=0.5, retries=0)
    try:
        deadline = time.monotonic() + 5
        while True:  # the board notices the new pty within its 50 ms supervision tick
            try:
                response = client.read_discrete_inputs(0, count=4, device_id=1)
                if not response.isError():
                    break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                client.close()
                time.sleep(0.05)
        assert response.bits[:4] == [False, True, False, False]
        assert not client.write_coil(3, True, device_id=1).isError()
        assert board.coils() == [False, False, False, True]
        assert [(c, v) for _, c, v in board.write_history()] == [(3, True)]
    finally:
        client.close()
