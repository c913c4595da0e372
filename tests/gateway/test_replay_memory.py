"""The replay memory of signed platform requests (DESIGN §6.1) does not fsync each commit: a burst of
signed requests must not put an fsync ahead of every door's commit (found by bench/fault_mqtt.py, where
decision p99 went from ~9 ms to 15-77 ms under 250 signed requests a second). Its rows become durable
with the doors' next commit or the checkpoint, as the API's do; a crash of the process loses none."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from config.models import GatewayConfig
from gateway.app import Gateway
from gateway.store.db import make_engine
from gateway.store.replay import SqlReplayMemory
from testing.gateway import gateway_config
from testing.peers import free_port

FULL, NORMAL = 2, 1


def synchronous(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar())


def test_the_gateway_remembers_requests_without_an_fsync_each_while_doors_keep_theirs(tmp_path: Path) -> None:
    cfg = GatewayConfig.model_validate(gateway_config(tmp_path / "data", free_port()))
    gateway = Gateway(cfg)
    try:
        assert synchronous(gateway.engine) == FULL  # the doors' commits survive a power cut
        assert synchronous(gateway.replay_engine) == NORMAL
        memory = SqlReplayMemory(gateway.replay_engine)
        now = datetime.now(UTC)
        assert memory.first_time("t-1", now) and not memory.first_time("t-1", now)
    finally:
        gateway.engine.dispose()
        gateway.replay_engine.dispose()
    # Written through the NORMAL connection, read back by a new engine (a restart): still remembered.
    again = make_engine(tmp_path / "data")
    try:
        assert not SqlReplayMemory(again).first_time("t-1", datetime.now(UTC))
    finally:
        again.dispose()
