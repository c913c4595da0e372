"""What the gateway's wiring needs of each kind of device, as structural types (typing.Protocol).

The gateway holds a `Reader`, a `Lock` or `DoorInputs`, not a transport class: a Modbus module,
a simulator or an OSDP reader fits by having these methods, without inheriting from anything.
Inputs and card reads are not methods: they arrive as driver events (CardPresented, DoorInput, ...)
through the `emit` callback each device is built with.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable


@runtime_checkable
class Device(Protocol):
    """A device with its own thread: started once, stopped on shutdown, `online` while it answers."""

    @property
    def online(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class Reader(Device, Protocol):
    """A card reader; reads arrive as CardPresented / BadFrame events."""

    def feedback(self, granted: bool) -> None:
        """Show the decision at the reader (OSDP: green + one beep, red + two beeps); returns at once.

        A reader without LED or buzzer control does nothing."""
        ...


@runtime_checkable
class DoorInputs(Device, Protocol):
    """Door contacts, exit buttons, fire alarm; changes arrive as DoorInput events."""


@runtime_checkable
class Lock(Protocol):
    """Lock relays by coil number."""

    def pulse(self, coil: int, ms: int) -> threading.Event:
        """Coil ON now, OFF after `ms`; the event is set once the ON command has left for the device."""
        ...

    def hold(self, coil: int) -> None:
        """Coil ON until release(), cancelling a pending pulse end (e.g. fire-alarm unlock)."""
        ...

    def release(self, coil: int) -> None:
        """Coil OFF, cancelling a pending pulse end."""
        ...
