from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.peers import Mosquitto

# Tests that measure time (latencies, CPU shares, "within a second"): on a machine with cores to spare,
# run `-m timed` alone and the rest with `-n 2` (pytest-xdist), so a neighbour never skews a measurement.
TIMED = (
    "tests/drivers/",
    "tests/gateway/test_face_e2e.py",
    "tests/gateway/test_card_e2e.py",
    "tests/gateway/test_door_under_load.py",
    "tests/gateway/test_roster_e2e.py",
    "tests/gateway/test_doors.py",
    "tests/recognition/test_pipeline.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(TIMED):
            item.add_marker(pytest.mark.timed)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
