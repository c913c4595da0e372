"""Benchmark (b): outbox throughput to a local mosquitto, QoS 1, durable.

N entry events are written to the gateway's store (entry log + outbox, as
the door's path writes them), then the uplink (paho facade + outbox pump)
publishes them to a mosquitto with persistence on; a row is deleted only on
PUBACK. The clock runs from the first publish until the outbox is empty and
a platform-side subscriber (QoS 1, persistent session) has every event.

    .venv/bin/python -m bench.outbox_throughput [--events 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from config.models import MqttConfig
from gateway.store.db import open_store
from gateway.store.journal import EntryDraft, SqlOutbox, record_entry
from sync.mqtt_client import LinkCallbacks, MqttLink
from sync.outbox import OutboxPump
from sync.topics import Topics
from testing.peers import Mosquitto, Subscriber, wait_until


def fill_outbox(sessions, events: int) -> None:
    with sessions.begin() as s:
        for i in range(events):
            draft = EntryDraft(
                datetime.now(UTC),
                "main",
                "card",
                "granted",
                "granted",
                reader="r1",
                card_number=i,
                card_bits=34,
                tenant_id=f"t{i % 2000:06d}",
            )
            record_entry(s, "bench-0001", draft)


async def publish_all(outbox: SqlOutbox, link: MqttLink, pump: OutboxPump, sub: Subscriber, events: int) -> float:
    stop = asyncio.Event()
    task = asyncio.create_task(pump.run(stop))
    link.start()
    await asyncio.to_thread(wait_until, lambda: link.connected, 10, 0.01, "connection")
    start = time.perf_counter()
    await asyncio.to_thread(wait_until, lambda: len(sub.messages) >= events, 300, 0.01, "all events at the subscriber")
    await asyncio.to_thread(wait_until, lambda: outbox.depth() == 0, 60, 0.01, "empty outbox")
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    link.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="accessgw-bench-outbox-"))
    broker = Mosquitto(work / "broker")
    broker.start()
    try:
        _, sessions = open_store(work / "data")
        t = time.perf_counter()
        fill_outbox(sessions, args.events)
        print(f"{args.events} entries + outbox rows written in {time.perf_counter() - t:.1f} s")
        topics = Topics("accessgw", "bench-0001")
        sub = Subscriber(broker.port, "accessgw/bench-0001/events/#", client_id="bench-platform")
        outbox = SqlOutbox(sessions)
        pump = OutboxPump(outbox, topics.under)
        link = MqttLink(
            MqttConfig(port=broker.port),
            topics,
            LinkCallbacks(
                on_connected=pump.on_connected, on_disconnected=lambda r: pump.on_disconnected(), on_ack=pump.on_ack
            ),
        )
        pump.attach(link)
        elapsed = asyncio.run(publish_all(outbox, link, pump, sub, args.events))
        ids = {p["id"] for p in sub.payloads("events/entry")}
        sub.close()
    finally:
        broker.stop()
    print(f"machine: {os.cpu_count()} cores; mosquitto with persistence; QoS 1; rows deleted on PUBACK")
    print(
        f"(b) {args.events} events in {elapsed:.2f} s = {args.events / elapsed:,.0f} events/s; "
        f"distinct ids received {len(ids)}"
    )


if __name__ == "__main__":
    main()
