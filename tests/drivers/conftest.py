"""Fixtures for driver tests: real pty links (socat), a real Modbus RTU board, an event sink.

Every thread and socat process started here is stopped in teardown, also when
the test fails, and every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.simulators import SimulatedRelayBoard, VirtualSerialLink
from tests.drivers.support import Events


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def make_link(tmp_path: Path) -> Iterator[Callable[[str], VirtualSerialLink]]:
    """make_link("reader") -> a socat link between tmp_path/reader-a and tmp_path/reader-b."""
    links: list[VirtualSerialLink] = []

    def make(name: str) -> VirtualSerialLink:
        link = VirtualSerialLink(tmp_path / f"{name}-a", tmp_path / f"{name}-b")
        links.append(link)
        return link

    try:
        yield make
    finally:
        for link in links:
            link.close()


@pytest.fixture
def make_board() -> Iterator[Callable[..., SimulatedRelayBoard]]:
    boards: list[SimulatedRelayBoard] = []

    def make(port: str, **kwargs: Any) -> SimulatedRelayBoard:
        board = SimulatedRelayBoard(port, **kwargs)
        boards.append(board)
        board.start()
        return board

    try:
        yield make
    finally:
        for board in boards:
            board.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the real RTSP or ONVIF camera take seconds each: they belong to the whole run, not the quick one."""
    for item in items:
        if {"rtsp", "onvif"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
