"""Outbox → MQTT against a real mosquitto: QoS 1, order, outages, commands."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from config.models import MqttConfig
from gateway.store.db import open_store
from gateway.store.journal import EntryDraft, SqlOutbox, record_entry
from sync.commands import CommandError, CommandRouter
from sync.mqtt_client import LinkCallbacks, MqttLink, probe_broker
from sync.outbox import OutboxPump
from sync.topics import Topics
from testing.peers import Mosquitto, Subscriber, free_port, wait_until


def add_entries(sessions, n: int) -> list[str]:
    ids = []
    with sessions.begin() as s:
        for i in range(n):
            draft = EntryDraft(datetime.now(UTC), "main", "card", "denied", "unknown_card", card_number=i, card_bits=34)
            ids.append(record_entry(s, "gw1", draft).id)
    return ids


def make_uplink(port: int, sessions) -> tuple[MqttLink, OutboxPump, Topics]:
    topics = Topics("accessgw", "gw1")
    pump = OutboxPump(SqlOutbox(sessions), topics.under, window=50)
    link = MqttLink(
        MqttConfig(port=port, reconnect_max_s=1),
        topics,
        LinkCallbacks(
            on_connected=pump.on_connected, on_disconnected=lambda r: pump.on_disconnected(), on_ack=pump.on_ack
        ),
    )
    pump.attach(link)
    return link, pump, topics


def test_every_event_arrives_once_in_order_and_leaves_the_outbox(tmp_path: Path, mosquitto: Mosquitto) -> None:
    _, sessions = open_store(tmp_path / "data")
    ids = add_entries(sessions, 300)
    sub = Subscriber(mosquitto.port, "accessgw/gw1/#")
    link, pump, _ = make_uplink(mosquitto.port, sessions)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pump.run(stop))
        link.start()
        await asyncio.to_thread(sub.wait_for, lambda: len(sub.payloads("events/entry")) >= 300, 15, "300 entries")
        await asyncio.to_thread(wait_until, lambda: SqlOutbox(sessions).depth() == 0, 5, 0.02, "empty outbox")
        stop.set()
        await task
        link.stop()

    asyncio.run(scenario())
    got = sub.payloads("events/entry")
    assert [p["id"] for p in got] == ids
    assert [p["seq"] for p in got] == sorted(p["seq"] for p in got)
    assert sub.raw("availability")[-1] == b"offline"  # clean stop says so, retained
    sub.close()


def test_broker_outage_loses_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    _, sessions = open_store(tmp_path / "data")
    sub = Subscriber(mosquitto.port, "accessgw/gw1/events/#")
    link, pump, _ = make_uplink(mosquitto.port, sessions)
    ids = add_entries(sessions, 50)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pump.run(stop))
        link.start()
        await asyncio.to_thread(sub.wait_for, lambda: len(sub.payloads("entry")) >= 50, 10, "first batch")
        mosquitto.stop()
        await asyncio.to_thread(wait_until, lambda: not link.connected, 10, 0.05, "link down")
        ids.extend(add_entries(sessions, 100))  # written while the broker is away
        pump.notify()
        await asyncio.sleep(1.0)  # the point: a second with no broker, in which nothing may be dropped
        assert SqlOutbox(sessions).depth() == 100  # kept, not dropped
        mosquitto.start()
        await asyncio.to_thread(
            sub.wait_for, lambda: {p["id"] for p in sub.payloads("entry")} >= set(ids), 20, "all ids after outage"
        )
        await asyncio.to_thread(wait_until, lambda: SqlOutbox(sessions).depth() == 0, 5, 0.05, "empty outbox")
        stop.set()
        await task
        link.stop()

    asyncio.run(scenario())
    got = sub.payloads("entry")
    new_seqs: list[int] = []
    seen: set[str] = set()
    for p in got:  # seq never goes backwards for ids not seen before
        if p["id"] not in seen:
            seen.add(p["id"])
            new_seqs.append(p["seq"])
    assert new_seqs == sorted(new_seqs)
    sub.close()


def test_command_router_answers_every_request(tmp_path: Path) -> None:
    answers: list[tuple[str, dict]] = []
    router = CommandRouter(lambda cmd, payload: answers.append((cmd, json.loads(payload))))

    async def door_open(req: dict) -> dict:
        if req.get("door") != "main":
            raise CommandError("unknown_door")
        return {"door": "main"}

    router.register("door/open", door_open)
    asyncio.run(router.dispatch("door/open", b'{"transaction": "t1", "door": "main"}'))
    asyncio.run(router.dispatch("door/open", b'{"transaction": "t2", "door": "x"}'))
    asyncio.run(router.dispatch("door/open", b"not json"))
    asyncio.run(router.dispatch("nope", b'{"transaction": 5}'))
    assert [a[1]["status"] for a in answers] == ["ok", "error", "error", "error"]
    assert [a[1].get("error") for a in answers] == [None, "unknown_door", "malformed", "unknown_command"]
    assert [a[1]["transaction"] for a in answers] == ["t1", "t2", None, 5]


def test_probe_broker(mosquitto: Mosquitto) -> None:
    assert probe_broker(MqttConfig(port=mosquitto.port)) is None
    assert "cannot connect" in (probe_broker(MqttConfig(port=free_port()), timeout_s=1) or "")
