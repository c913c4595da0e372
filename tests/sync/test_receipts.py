"""The town's receipts: an outbox row leaves only when a signed receipt for this gateway names it, and
what gets none is sent again — across the mosquitto restart that drops a `$share` subscription."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from config.models import MqttConfig, SyncConfig
from gateway.store.db import open_store
from gateway.store.journal import SqlOutbox
from sync.mqtt_client import LinkCallbacks, MqttLink
from sync.outbox import OutboxPump, ReceiptPolicy, receipt_policy
from sync.receipts import MAX_SEQS, ReceiptError, receipt_message, receipted_seqs, seq_ranges
from sync.signing import new_key_pair
from sync.topics import Topics
from testing.peers import Mosquitto, wait_until
from tests.sync.test_uplink import add_entries
from town.receipts import ReceiptSender

KEY, PUBLIC = new_key_pair()
OTHER, _ = new_key_pair()


def test_seq_ranges_are_short_and_receipts_expand_to_the_same_seqs() -> None:
    assert seq_ranges([7, 3, 1, 2, 2, 9, 8]) == [[1, 3], [7, 9]]
    raw = receipt_message("gw1", [5, 1, 2, 3], KEY).encode()
    assert receipted_seqs(raw, "gw1", KEY.verify_key, datetime.now(UTC), 300) == [1, 2, 3, 5]


@pytest.mark.parametrize(
    ("make", "why"),
    [  # made when the test runs: a receipt built at collection would be stale by then in a long run
        (lambda: receipt_message("gw1", [1], OTHER).encode(), "not signed"),
        (lambda: receipt_message("gw2", [1], KEY).encode(), "for gateway 'gw2'"),
        (lambda: receipt_message("gw1", [1], KEY, datetime.now(UTC) - timedelta(hours=1)).encode(), "issued_at"),
        (lambda: b"\xff not json", "not JSON"),
        (lambda: b"[]", "not signed"),
        (lambda: receipt_message("gw1", range(1, MAX_SEQS + 2), KEY).encode(), "at most"),
        (lambda: b"x" * 70_000, "bytes"),
    ],
)
def test_a_receipt_not_from_the_town_for_us_and_now_is_refused(make: Callable[[], bytes], why: str) -> None:
    with pytest.raises(ReceiptError, match=why):
        receipted_seqs(make(), "gw1", KEY.verify_key, datetime.now(UTC), 300)


def test_receipts_need_the_platform_key_in_config() -> None:
    with pytest.raises(ValueError, match="needs platform_public_key"):
        SyncConfig(keep_until_receipt=True)
    assert receipt_policy(SyncConfig(platform_public_key=PUBLIC), "gw1") is None  # off unless asked for
    assert receipt_policy(SyncConfig(platform_public_key=PUBLIC, keep_until_receipt=True), "gw1") is not None


class FakeLink:
    """A broker that takes everything: publish returns a mid, PUBACKs are given by the test."""

    connected = True

    def __init__(self) -> None:
        self.sent: list[tuple[int, int]] = []  # (mid, seq)
        self._mid = 0

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> int:
        self._mid += 1
        self.sent.append((self._mid, json.loads(payload)["seq"]))
        return self._mid


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def receipt_pump(tmp_path: Path) -> tuple[OutboxPump, FakeLink, SqlOutbox, Clock, list[int]]:
    _, sessions = open_store(tmp_path / "data")
    add_entries(sessions, 5)
    outbox = SqlOutbox(sessions)
    seqs = [row.seq for row in outbox.pending(0, 100)]
    clock = Clock()
    pump = OutboxPump(outbox, Topics("accessgw", "gw1").under, receipts=ReceiptPolicy(KEY.verify_key, "gw1", 10.0),
                      clock=clock)  # fmt: skip
    link = FakeLink()
    pump.attach(link)
    return pump, link, outbox, clock, seqs


def send_and_ack(pump: OutboxPump, link: FakeLink) -> None:
    """One round of sending, the broker's PUBACK for every message sent so far, and the round that takes them."""
    pump.step()
    for mid, _ in link.sent:
        pump.on_ack(mid)
    pump.step()


def test_a_row_stays_after_the_pubacks_and_leaves_at_the_towns_receipt(tmp_path: Path) -> None:
    pump, link, outbox, clock, seqs = receipt_pump(tmp_path)
    send_and_ack(pump, link)
    assert outbox.depth() == 5 and pump.waiting_for_receipt() == 5  # the broker has them; the town maybe not
    pump.on_receipt(receipt_message("gw1", seqs[:3], OTHER).encode())  # forged
    pump.on_receipt(receipt_message("gw2", seqs[:3], KEY).encode())  # another building's
    pump.step()
    assert outbox.depth() == 5
    pump.on_receipt(receipt_message("gw1", seqs[:3], KEY).encode())
    pump.step()
    assert outbox.depth() == 2 and pump.delivered == 3
    assert [row.seq for row in outbox.pending(0, 10)] == seqs[3:]


def test_what_gets_no_receipt_is_sent_again_with_a_growing_wait(tmp_path: Path) -> None:
    pump, link, outbox, clock, seqs = receipt_pump(tmp_path)
    send_and_ack(pump, link)
    pump.on_receipt(receipt_message("gw1", seqs[:2], KEY).encode())
    pump.step()
    link.sent.clear()
    clock.now = 9.9
    pump.step()
    assert link.sent == []  # not yet
    clock.now = 10.1
    pump.step()
    assert [seq for _, seq in link.sent] == seqs[2:] and pump.resent_rounds == 1  # the three without a receipt
    for mid, _ in link.sent:
        pump.on_ack(mid)
    pump.step()
    link.sent.clear()
    clock.now = 10.1 + 19.0
    pump.step()
    assert link.sent == []  # the wait doubled to 20 s
    clock.now = 10.1 + 20.5
    pump.step()
    assert len(link.sent) == 3 and pump.resent_rounds == 2


def test_a_town_that_is_behind_but_receipting_in_order_gets_nothing_twice(tmp_path: Path) -> None:
    pump, link, outbox, clock, seqs = receipt_pump(tmp_path)
    send_and_ack(pump, link)
    link.sent.clear()
    for i, now in enumerate((8.0, 16.0, 24.0)):  # one more row receipted every 8 s: slow, in order
        clock.now = now
        pump.on_receipt(receipt_message("gw1", [seqs[i]], KEY).encode())
        pump.step()
    clock.now = 30.0  # the last two have waited 30 s (3x the timeout), the town is alive and in order
    pump.step()
    assert link.sent == [] and pump.resent_rounds == 0


def test_a_row_passed_over_by_later_receipts_is_sent_again(tmp_path: Path) -> None:
    pump, link, outbox, clock, seqs = receipt_pump(tmp_path)
    send_and_ack(pump, link)
    link.sent.clear()
    clock.now = 5.0
    pump.on_receipt(receipt_message("gw1", seqs[2:], KEY).encode())  # 1 and 2 were dropped on the way
    pump.step()
    for now in (10.0, 12.0, 14.0):  # the town keeps receipting newer rows: alive, not silent
        clock.now = now
        pump.on_receipt(receipt_message("gw1", [seqs[-1]], KEY).encode())
        pump.step()
    assert link.sent == []  # passed over for 9 s only
    clock.now = 15.5
    pump.step()
    assert [seq for _, seq in link.sent] == seqs[:2] and pump.resent_rounds == 1


def test_a_receipt_before_the_puback_is_not_sent_again(tmp_path: Path) -> None:
    pump, link, outbox, clock, seqs = receipt_pump(tmp_path)
    pump.step()
    pump.on_receipt(receipt_message("gw1", seqs, KEY).encode())  # the town was quicker than the PUBACK
    pump.step()
    for mid, _ in link.sent:
        pump.on_ack(mid)
    link.sent.clear()
    clock.now = 100.0
    pump.step()
    assert outbox.depth() == 0 and link.sent == [] and pump.waiting_for_receipt() == 0


class ShareConsumer:
    """A town-like consumer: a persistent session on a `$share` subscription that stores what it gets
    and sends receipts (town.receipts) — as town.ingest does, without the database."""

    def __init__(self, port: int) -> None:
        self.got: dict[int, int] = {}  # seq → times received
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="town-like", clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("$share/town/accessgw/+/events/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.receipts = ReceiptSender(KEY, lambda t, p: self._publish(t, p), "accessgw", interval_s=0.2)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        self.receipts.start()

    def _publish(self, topic: str, payload: str) -> int | None:
        info = self.client.publish(topic, payload, qos=1)
        return info.mid if info.rc == paho.MQTT_ERR_SUCCESS else None

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        seq = json.loads(msg.payload)["seq"]
        with self.lock:
            self.got[seq] = self.got.get(seq, 0) + 1
        self.receipts.add({msg.topic.split("/")[1]: [seq]})

    def close(self) -> None:
        self.receipts.stop()
        self.client.disconnect()
        self.client.loop_stop()


def test_a_broker_restart_that_drops_the_share_subscription_loses_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """mosquitto 2.0.11 restores a persistent session's plain subscriptions from its file, not its `$share`
    ones: what a gateway publishes after the restart, before the town subscribes again, the broker acks
    and drops. With receipts the gateway sends it again."""
    _, sessions = open_store(tmp_path / "data")
    topics = Topics("accessgw", "gw1")
    outbox = SqlOutbox(sessions)
    pump = OutboxPump(outbox, topics.under, receipts=ReceiptPolicy(KEY.verify_key, "gw1", timeout_s=2.0))
    link = MqttLink(MqttConfig(port=mosquitto.port, reconnect_max_s=1), topics, LinkCallbacks(
        on_connected=pump.on_connected, on_disconnected=lambda r: pump.on_disconnected(), on_ack=pump.on_ack,
        on_receipt=pump.on_receipt))  # fmt: skip
    pump.attach(link)
    town = ShareConsumer(mosquitto.port)
    wait_until(town.client.is_connected, 5, what="town connected")

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pump.run(stop))
        link.start()
        add_entries(sessions, 20)
        pump.notify()
        await asyncio.to_thread(wait_until, lambda: outbox.depth() == 0, 10, 0.05, "first 20 receipted")
        town.client.loop_stop()  # the town is slow to come back (its network thread stopped)
        mosquitto.stop()
        mosquitto.start()
        await asyncio.to_thread(wait_until, lambda: link.connected, 10, 0.05, "gateway back first")
        add_entries(sessions, 30)  # published at once: the broker has no subscriber for them yet
        pump.notify()
        await asyncio.to_thread(wait_until, lambda: pump.waiting_for_receipt() == 30, 10, 0.05, "30 PUBACKed")
        town.client.reconnect()
        town.client.loop_start()
        await asyncio.to_thread(wait_until, lambda: outbox.depth() == 0, 20, 0.1, "all 50 receipted")
        stop.set()
        await task
        link.stop()

    try:
        asyncio.run(scenario())
    finally:
        town.close()
    assert sorted(town.got) == list(range(1, 51))
    assert pump.resent_rounds >= 1  # the 30 were dropped by the broker once, and came again
