"""The town's consumer over TLS against the shipped broker config and ACL (DESIGN §6.2): the platform's
client certificate, the group's shared subscriptions allowed by the ACL's `user platform` lines, the
same TLS setup as the gateway's link (sync.mqtt_client._BrokerSession)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.models import MqttConfig
from sync.mqtt_client import InboundMessage, LinkCallbacks, MqttLink, SharedConsumer
from sync.topics import Topics
from testing.peers import wait_until
from testing.tls import TlsMosquitto, TownCa
from town.ingest import shared_filters


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TownCa, dict[str, Path]]:
    ca = TownCa(tmp_path_factory.mktemp("pki") / "town")
    files = {"ca": ca.crt}
    files["server_crt"], files["server_key"] = ca.issue("127.0.0.1", ["127.0.0.1", "localhost"])
    for cn in ("gw-a", "platform"):
        files[f"{cn}_crt"], files[f"{cn}_key"] = ca.issue(cn)
    return ca, files


@pytest.fixture
def broker(pki, tmp_path: Path) -> Iterator[TlsMosquitto]:
    ca, files = pki
    b = TlsMosquitto(tmp_path / "broker", ca, files["server_crt"], files["server_key"])
    b.start()
    yield b
    b.stop()


def _cfg(files: dict[str, Path], port: int, who: str, **more: object) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, tls=True, ca_file=files["ca"], cert_file=files[f"{who}_crt"],
                      key_file=files[f"{who}_key"], reconnect_max_s=1, **more)  # fmt: skip


def test_the_platform_consumes_the_shared_subscription_over_tls(pki, broker: TlsMosquitto) -> None:
    _, files = pki
    got: list[InboundMessage] = []
    consumer = SharedConsumer(_cfg(files, broker.port, "platform"), "accessgw-town-t1",
                              shared_filters("accessgw", "platform"), got.append)  # fmt: skip
    gateway = MqttLink(_cfg(files, broker.port, "gw-a"), Topics("accessgw", "gw-a"), LinkCallbacks())
    try:
        consumer.start()
        wait_until(lambda: consumer.subscribed, 10, what="consumer subscribed over TLS")
        gateway.start()
        wait_until(lambda: gateway.connected, 10, what="gateway connected")
        gateway.publish("accessgw/gw-a/events/entry", b'{"id": "E1"}')
        wait_until(lambda: any(m.topic.endswith("/events/entry") for m in got), 10, what="the entry")
        entry = next(m for m in got if m.topic.endswith("/events/entry"))
        assert (entry.payload, entry.qos, entry.retained) == (b'{"id": "E1"}', 1, False)
        assert consumer.ack(entry)
        assert any(m.topic == "accessgw/gw-a/availability" for m in got)  # the link's "online"
        assert consumer.last_error is None
    finally:
        gateway.stop()
        consumer.stop()


def test_an_unreadable_certificate_is_reported_and_tried_again(pki, broker: TlsMosquitto, tmp_path: Path) -> None:
    _, files = pki
    missing = tmp_path / "later.key"
    cfg = _cfg(files, broker.port, "platform").model_copy(update={"key_file": missing})
    consumer = SharedConsumer(cfg, "accessgw-town-t2", shared_filters("accessgw", "platform"), lambda m: None)
    try:
        assert consumer.last_error is not None and "key_file" in consumer.last_error
        consumer.start()
        missing.write_bytes(files["platform_key"].read_bytes())  # the file appears: the next try connects
        wait_until(lambda: consumer.subscribed, 15, what="subscribed once the key is readable")
    finally:
        consumer.stop()
