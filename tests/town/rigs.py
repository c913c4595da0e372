"""Test rigs of the town's ingest: gateways publishing through the real sync.MqttLink, a town
instance (consumer + ingest) on a real broker, and event payloads as gateways write them."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from ulid import ULID

from config.models import MqttConfig
from config.town import TownConfig, TownMqttConfig
from sync.mqtt_client import InboundMessage, LinkCallbacks, MqttLink
from sync.topics import Topics
from testing.peers import wait_until
from town.ingest import Ingest, make_consumer
from town.store.models import TownAlert, TownEntry


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry(gateway_id: str, seq: int, ts: datetime | None = None, **over: Any) -> dict[str, Any]:
    return {"id": str(ULID()), "seq": seq, "ts": rfc3339(ts or datetime.now(UTC)), "gateway_id": gateway_id,
            "door": "main", "method": "card", "card_number": 305419896, "card_bits": 34, "tenant_id": "T0001",
            "decision": "granted", "reason": "granted", "face_distance": None, "camera": None,
            "snapshot": None} | over  # fmt: skip


def alert(gateway_id: str, seq: int, ts: datetime | None = None, **over: Any) -> dict[str, Any]:
    return {"id": str(ULID()), "seq": seq, "ts": rfc3339(ts or datetime.now(UTC)), "gateway_id": gateway_id,
            "kind": "door_forced", "state": "raised", "severity": "critical", "door": "main", "camera": None,
            "tenant_id": None, "details": {"input": 2}, "snapshot": None} | over  # fmt: skip


def inbound(topic: str, payload: dict[str, Any] | str | bytes, mid: int = 1) -> InboundMessage:
    raw = payload if isinstance(payload, bytes) else (payload if isinstance(payload, str) else json.dumps(payload))
    return InboundMessage(topic, raw.encode() if isinstance(raw, str) else raw, mid, 1, False)


class FakeGateway:
    """A gateway's uplink as the real one does it (sync.MqttLink: LWT, retained availability), publishing
    what the test hands it and keeping which messages the broker acknowledged."""

    def __init__(self, port: int, gateway_id: str, base_topic: str = "accessgw") -> None:
        self.gateway_id = gateway_id
        self.topics = Topics(base_topic, gateway_id)
        self.seq = 0
        self._lock = threading.Lock()
        self.mids: set[int] = set()
        self.acked: set[int] = set()
        self.sent: list[tuple[str, Any]] = []  # (suffix, payload) of every publish, in order
        cfg = MqttConfig(port=port, base_topic=base_topic, reconnect_max_s=1, client_id=f"test-gw-{gateway_id}")
        self.link = MqttLink(cfg, self.topics, LinkCallbacks(on_ack=self._on_ack))

    def _on_ack(self, mid: int) -> None:
        with self._lock:
            self.acked.add(mid)

    def start(self) -> FakeGateway:
        self.link.start()
        wait_until(lambda: self.link.connected, 10, what=f"{self.gateway_id} connected")
        return self

    def next_entry(self, **over: Any) -> dict[str, Any]:
        self.seq += 1
        return entry(self.gateway_id, self.seq, **over)

    def next_alert(self, **over: Any) -> dict[str, Any]:
        self.seq += 1
        return alert(self.gateway_id, self.seq, **over)

    def publish(self, suffix: str, payload: dict[str, Any] | str | bytes, retain: bool = False) -> None:
        raw = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        mid = self.link.publish(self.topics.under(suffix), raw, qos=1, retain=retain)
        assert mid is not None, "not connected"
        with self._lock:
            self.mids.add(mid)
            self.sent.append((suffix, payload))

    def wait_acked(self, timeout: float = 10.0) -> None:
        def done() -> bool:
            with self._lock:
                return self.mids <= self.acked

        wait_until(done, timeout, 0.01, f"broker acks of {self.gateway_id}'s messages")

    def publish_events(self, n: int, alert_every: int = 5) -> dict[str, str]:
        """`n` events (every `alert_every`-th an alert); returns id → gateway_id."""
        sent = {}
        for i in range(n):
            is_alert = i % alert_every == alert_every - 1
            payload = self.next_alert() if is_alert else self.next_entry()
            self.publish("events/alert" if is_alert else "events/entry", payload)
            sent[payload["id"]] = self.gateway_id
        return sent

    def stop(self) -> None:
        self.link.stop()


class TownInstance:
    """One platform instance: the shared consumer and the ingest, as town.service wires them."""

    def __init__(self, cfg: TownConfig, sessions: sessionmaker[Session], ingest: Ingest | None = None,
                 **ingest_kwargs: Any) -> None:  # fmt: skip
        self.ingest = ingest or Ingest(sessions, base_topic=cfg.mqtt.base_topic, **ingest_kwargs)
        self.consumer = make_consumer(cfg, self.ingest.submit)

    def start(self) -> TownInstance:
        self.ingest.start(self.consumer.ack)
        self.consumer.start()
        wait_until(lambda: self.consumer.subscribed, 10, what="town consumer subscribed")
        return self

    def stop(self) -> None:
        self.ingest.stop()
        self.consumer.stop()


def with_broker(cfg: TownConfig, port: int, instance: str | None = None) -> TownConfig:
    mqtt = TownMqttConfig(port=port, reconnect_max_s=1, keepalive_s=5)
    return cfg.model_copy(update={"mqtt": mqtt, "instance": instance or cfg.instance})


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def stored_ids(sessions: sessionmaker[Session]) -> dict[str, list[str]]:
    """id → the gateway_ids of the rows with that id (entries and alerts): exactly once means one each."""
    out: dict[str, list[str]] = {}
    with sessions() as s:
        for model in (TownEntry, TownAlert):
            for row_id, gw in s.execute(select(model.id, model.gateway_id)):
                out.setdefault(row_id, []).append(gw)
    return out
