"""The drivers satisfy the device protocols the gateway's wiring uses (drivers/devices.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from config.models import IoModuleConfig, ReaderConfig
from drivers.devices import DoorInputs, Lock, Reader
from drivers.modbus_io import ModbusIoModule
from drivers.serial_reader import SerialCardReader


def test_modbus_module_is_a_lock_and_door_inputs(tmp_path: Path) -> None:
    module = ModbusIoModule(IoModuleConfig(id="io1", port=str(tmp_path / "none")), lambda event: None)
    lock: Lock = module  # checked by a type checker ...
    inputs: DoorInputs = module
    assert isinstance(lock, Lock) and isinstance(inputs, DoorInputs)  # ... and at run time


def test_hold_and_release_queue_what_set_coil_does(tmp_path: Path) -> None:
    """hold/release are set_coil(coil, True/False): the bus thread sees the same commands.

    test_modbus_io.py's set_coil test shows those commands on a real board.
    """

    def queued(call: Callable[[ModbusIoModule], None]) -> object:
        module = ModbusIoModule(IoModuleConfig(id="io1", port=str(tmp_path / "none")), lambda event: None)
        call(module)  # not started: the command stays on the queue
        return module._commands.get_nowait()

    assert queued(lambda m: m.hold(3)) == queued(lambda m: m.set_coil(3, True))
    assert queued(lambda m: m.release(3)) == queued(lambda m: m.set_coil(3, False))
    module = ModbusIoModule(IoModuleConfig(id="io1", port=str(tmp_path / "none")), lambda event: None)
    with pytest.raises(ValueError):
        module.hold(70_000)
    with pytest.raises(ValueError):
        module.release(-1)


def test_serial_reader_is_a_reader(tmp_path: Path) -> None:
    reader: Reader = SerialCardReader(
        ReaderConfig(id="r1", protocol="wiegand-text", port=str(tmp_path / "none")), lambda event: None
    )
    assert isinstance(reader, Reader)
    assert not isinstance(reader, Lock)


def test_something_else_is_not_a_lock() -> None:
    class Half:
        def pulse(self, coil: int, ms: int) -> None: ...

    assert not isinstance(Half(), Lock)
