"""The gateway's last will (DESIGN §6): killed without a goodbye, the broker itself says `offline`.

`accessgw run` as its own process on a real mosquitto; SIGKILL leaves it no chance to publish anything,
so the retained `offline` that follows can only be the will the gateway left with the broker on connect
(sync/mqtt_client.py `will_set`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testing.gateway import GatewayProcess, gateway_config
from testing.peers import Mosquitto, Subscriber, wait_until

KEEPALIVE_S = 5  # the smallest the config allows: the will is due within 1.5 x keepalive at worst
AVAILABILITY = "accessgw/gw-will/availability"


@pytest.mark.slow  # the daemon and its API child start and are killed
def test_sigkill_makes_the_broker_publish_the_retained_offline(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = gateway_config(tmp_path / "data", mosquitto.port, gateway_id="gw-will", mqtt={"keepalive_s": KEEPALIVE_S})
    gw = GatewayProcess(tmp_path, config)
    sub = Subscriber(mosquitto.port, AVAILABILITY, client_id="will-watcher")
    try:
        gw.start()
        wait_until(lambda: sub.raw(AVAILABILITY)[-1:] == [b"online"], 10, what="online")
        seen = len(sub.messages)
        assert gw.proc is not None
        killed = time.monotonic()
        gw.proc.kill()  # SIGKILL
        wait_until(lambda: [p for _, p, _ in sub.messages[seen:]] == [b"offline"], 1.5 * KEEPALIVE_S,
                   what="the will: offline")  # fmt: skip
        print(f"offline published {time.monotonic() - killed:.2f} s after SIGKILL")
        gw.kill()  # reaped, and its API child gone with it
    finally:
        gw.stop()
        sub.close()
    # Retained: whoever looks later (the town after a restart) learns the gateway is gone.
    late = Subscriber(mosquitto.port, AVAILABILITY, client_id="will-latecomer")
    try:
        assert wait_until(lambda: late.messages, 5, what="the retained availability") == [
            (AVAILABILITY, b"offline", True)
        ]
    finally:
        late.close()
