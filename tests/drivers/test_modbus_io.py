"""ModbusIoModule against pymodbus's RTU server (SimulatedRelayBoard) over a real pty link."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import pytest
from pymodbus.client import ModbusSerialClient

from config.models import IoModuleConfig
from drivers.events import DoorInput, IoStatus
from drivers.modbus_io import ModbusIoModule
from drivers.simulators import SimulatedRelayBoard
from tests.drivers.support import Events, wait_until


@pytest.fixture
def make_io(events: Events) -> Iterator[Callable[..., ModbusIoModule]]:
    modules: list[ModbusIoModule] = []

    def make(port: str, **overrides: object) -> ModbusIoModule:
        settings: dict[str, object] = {
            "id": "io1",
            "port": port,
            "inputs": 4,
            "poll_ms": 50,
            "timeout_s": 0.2,
            "reconnect_max_s": 0.5,
        }
        settings.update(overrides)
        module = ModbusIoModule(IoModuleConfig(**settings), events, backoff_initial_s=0.05)  # type: ignore[arg-type]
        modules.append(module)
        module.start()
        return module

    try:
        yield make
    finally:
        for module in modules:
            module.stop()


def online(value: bool) -> Callable[[object], bool]:
    return lambda e: isinstance(e, IoStatus) and e.online is value


def writes_of(board: SimulatedRelayBoard, coil: int) -> list[tuple[float, bool]]:
    return [(t, v) for t, c, v in board.write_history() if c == coil]


def test_board_address_mapping_with_a_plain_client(make_link, make_board) -> None:
    """Client coil/input N is board coil/input N (no off-by-one from the datastore)."""
    link = make_link("map")
    board = make_board(link.b, coils=8, inputs=8, unit=3)
    client = ModbusSerialClient(link.a, baudrate=9600, timeout=1, retries=0)
    assert client.connect()
    try:
        assert not client.write_coil(0, True, device_id=3).isError()
        assert not client.write_coil(5, True, device_id=3).isError()
        assert board.coils() == [True, False, False, False, False, True, False, False]
        assert board.coil(0) and board.coil(5) and not board.coil(1)
        board.set_input(3, True)
        assert client.read_discrete_inputs(0, count=8, device_id=3).bits[:8] == [False] * 3 + [True] + [False] * 4
        assert [(c, v) for _, c, v in board.write_history()] == [(0, True), (5, True)]
        assert client.read_coils(0, count=16, device_id=3).bits[:8] == board.coils()
        assert client.read_coils(0, count=17, device_id=3).isError()  # 8 coils, padded to one 16-bit block
    finally:
        client.close()


def test_pulse_on_then_off_after_pulse_ms(make_link, make_board, make_io, events: Events) -> None:
    link = make_link("pulse")
    board = make_board(link.b)
    io = make_io(link.a)
    events.wait(online(True))
    called = time.monotonic()
    io.pulse(2, 300)
    wait_until(lambda: len(writes_of(board, 2)) >= 2, timeout=2, what="pulse on and off")
    (t_on, on), (t_off, off) = writes_of(board, 2)
    assert (on, off) == (True, False)
    assert t_on - called < 0.05  # the ON write is not held back by polling
    assert abs((t_off - t_on) - 0.300) < 0.1, t_off - t_on
    assert not board.coil(2)


def test_pulse_on_write_latency_when_bus_idle(make_link, make_board, make_io, events: Events) -> None:
    link = make_link("lat")
    board = make_board(link.b)
    io = make_io(link.a, poll_ms=5000, inputs=1)  # keep the bus idle between pulses
    events.wait(online(True))
    delays = []
    for coil in range(8):
        board.clear_history()
        called = time.monotonic()
        io.pulse(coil, 50)
        wait_until(lambda c=coil: writes_of(board, c), timeout=2, what="ON write")
        delays.append(writes_of(board, coil)[0][0] - called)
        wait_until(lambda c=coil: len(writes_of(board, c)) >= 2, timeout=2, what="OFF write")
        time.sleep(0.05)  # the OFF write's response is still on its way: let the bus go idle
    # From pulse() to the request arriving at the board, through the pty: about a millisecond.
    assert statistics.median(delays) < 0.005, delays
    assert max(delays) < 0.02, delays


def test_second_pulse_extends_without_a_second_on_write(make_link, make_board, make_io, events: Events) -> None:
    link = make_link("ext")
    board = make_board(link.b)
    io = make_io(link.a)
    events.wait(online(True))
    first = time.monotonic()
    io.pulse(1, 400)
    time.sleep(0.2)
    io.pulse(1, 400)  # ends 600 ms after the first
    io.pulse(1, 100)  # an earlier end never shortens the pulse
    wait_until(lambda: len(writes_of(board, 1)) >= 2, timeout=3, what="pulse off")
    time.sleep(0.1)
    history = writes_of(board, 1)
    assert [v for _, v in history] == [True, False]
    assert abs((history[1][0] - first) - 0.600) < 0.1, history[1][0] - first


def test_set_coil_holds_and_cancels_a_pulse(make_link, make_board, make_io, events: Events) -> None:
    link = make_link("hold")
    board = make_board(link.b)
    io = make_io(link.a)
    events.wait(online(True))
    io.pulse(3, 200)
    io.set_coil(3, True)  # fire alarm: held open; the pending pulse end is cancelled
    io.set_coil(4, True)
    io.pulse(4, 100)  # a pulse on a held coil leaves it on when it ends
    time.sleep(0.5)
    assert board.coil(3) and board.coil(4)
    assert [v for _, v in writes_of(board, 3)] == [True]
    io.set_coil(3, False)
    wait_until(lambda: not board.coil(3), timeout=2, what="coil 3 released")
    assert board.coil(4)


def test_door_inputs_initial_state_and_changes(make_link, make_board, make_io, events: Events) -> None:
    link = make_link("in")
    board = make_board(link.b)
    board.set_input(2, True)
    make_io(link.a)
    events.wait(online(True))
    wait_until(lambda: len(events.of(DoorInput)) >= 4, timeout=2, what="initial inputs")
    assert [(e.io, e.input, e.active) for e in events.of(DoorInput)] == [
        ("io1", 0, False),
        ("io1", 1, False),
        ("io1", 2, True),
        ("io1", 3, False),
    ]
    mark = events.mark()
    board.set_input(0, True)
    changed = events.wait(lambda e: isinstance(e, DoorInput), timeout=2, after=mark)
    assert (changed.input, changed.active) == (0, True)
    board.set_input(0, False)
    events.wait(lambda e: isinstance(e, DoorInput) and e.input == 0 and not e.active, timeout=2, after=mark)
    time.sleep(0.2)  # several more polls: no change, no event
    assert [(e.input, e.active) for e in events.snapshot()[mark:]] == [(0, True), (0, False)]


def test_link_gone_then_back(make_link, make_board, make_io, events: Events) -> None:
    link = make_link("gone")
    board = make_board(link.b)
    io = make_io(link.a)
    events.wait(online(True))
    io.set_coil(6, True)
    wait_until(lambda: board.coil(6), timeout=2, what="held coil")
    time.sleep(0.1)  # let the write's response reach the module: it then knows the coil is on

    link.close()  # the gateway's RS-485 adapter is unplugged
    offline = events.wait(online(False), timeout=3)
    assert offline.io == "io1" and offline.error
    time.sleep(0.6)  # reconnect attempts with backoff: no repeated status events
    assert [e.online for e in events.of(IoStatus)] == [True, False]

    board.stop()  # and the board was power-cycled meanwhile: it comes back with every coil off
    link.reopen()
    fresh = make_board(link.b)
    mark = events.mark()
    events.wait(online(True), timeout=5, after=mark)
    wait_until(lambda: fresh.coil(6), timeout=2, what="held coil re-applied after reconnect")
    # The inputs are announced again after the reconnect.
    wait_until(lambda: len([e for e in events.snapshot()[mark:] if isinstance(e, DoorInput)]) >= 4, timeout=2)
    io.pulse(0, 100)
    wait_until(lambda: len(writes_of(fresh, 0)) >= 2, timeout=2, what="pulse after reconnect")
    assert [e.online for e in events.of(IoStatus)] == [True, False, True]


def test_pulse_that_ends_during_an_outage_is_turned_off_on_reconnect(
    make_link, make_board, make_io, events: Events
) -> None:
    link = make_link("stuck")
    board = make_board(link.b)  # keeps its coils across the outage, like a powered board
    io = make_io(link.a)
    events.wait(online(True))
    io.pulse(0, 300)
    wait_until(lambda: board.coil(0), timeout=2, what="pulse on")
    link.close()  # before the OFF write could go out
    events.wait(online(False), timeout=3)
    time.sleep(0.4)
    assert board.coil(0)  # still unlocked: the OFF never reached it
    mark = events.mark()
    link.reopen()
    events.wait(online(True), timeout=5, after=mark)
    wait_until(lambda: not board.coil(0), timeout=2, what="relock after reconnect")


def test_silent_board_times_out_then_recovers(make_link, make_board, make_io, events: Events) -> None:
    link = make_link("silent")
    board = make_board(link.b)
    make_io(link.a)
    events.wait(online(True))
    board.stop()  # the port stays, nobody answers
    offline = events.wait(online(False), timeout=3)
    assert "No response" in (offline.error or "") or "Input/Output" in (offline.error or "")
    make_board(link.b)
    mark = events.mark()
    events.wait(online(True), timeout=5, after=mark)


def test_missing_port_is_offline_once(tmp_path, make_io, events: Events) -> None:
    make_io(str(tmp_path / "nothing"))
    events.wait(online(False), timeout=3)
    time.sleep(0.5)
    assert [e.online for e in events.of(IoStatus)] == [False]


def test_stop_ends_a_running_pulse(make_link, make_board, events: Events) -> None:
    link = make_link("stop")
    board = make_board(link.b)
    config = IoModuleConfig(id="io1", port=link.a, inputs=0, poll_ms=50, timeout_s=0.2)
    io = ModbusIoModule(config, events)
    io.start()
    try:
        events.wait(online(True))
        io.set_coil(1, True)
        io.pulse(0, 10_000)
        wait_until(lambda: board.coil(0) and board.coil(1), timeout=2, what="coils on")
    finally:
        started = time.monotonic()
        io.stop()
    assert time.monotonic() - started < 1.0
    assert not board.coil(0)  # no door left unlocked by a stopped gateway
    assert board.coil(1)  # held state is left as it is


def test_bad_arguments_are_refused_in_the_caller(make_link, make_board, make_io) -> None:
    io = make_io("/nonexistent/port")
    with pytest.raises(ValueError):
        io.pulse(-1, 100)
    with pytest.raises(ValueError):
        io.pulse(0, 0)
    with pytest.raises(ValueError):
        io.set_coil(70_000, True)
