"""A SIGKILL in the middle of a lock pulse (found by bench/fault_kill.py): the relay board keeps its coil
on, so the restarted gateway must switch it off, or the door stays unlocked until the next grant."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from testing.peers import Mosquitto, wait_until
from tests.gateway.rig import Rig

CARD = 0x00C0FFEE


@pytest.mark.slow
def test_a_lock_pulse_cut_short_by_a_kill_is_ended_by_the_restart(tmp_path: Path, mosquitto: Mosquitto) -> None:
    rig = Rig(tmp_path, mosquitto, pulse_ms=60_000)  # a pulse that outlives the process
    try:
        rig.enrol("t1", CARD, valid_to=date.today() + timedelta(days=30))
        rig.start()
        rig.card.swipe(CARD, 34)
        wait_until(lambda: rig.board.coil(0), 5, 0.01, "the lock relay on")
        rig.kill()
        assert rig.board.coil(0), "the board keeps its coil on without the gateway"
        rig.start()
        wait_until(lambda: not rig.board.coil(0), 5, 0.02, "the restarted gateway switching the lock relay off")
        # The entry came through the kill (at least once: sent again if its PUBACK was lost with the process).
        assert {(e["id"], e["decision"]) for e in rig.wait_entries(1)} == {(rig.entries()[0]["id"], "granted")}
    finally:
        rig.close()
