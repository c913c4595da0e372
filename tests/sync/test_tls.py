"""The town link over TLS (DESIGN §6.2): client certificates, the broker's ACL and the errors a town's
installer sees. A real mosquitto runs the shipped config/mosquitto files (templated for paths and the
port) on a free 127.0.0.1 port, with certificates made here by the openssl CLI."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from config.models import MqttConfig
from sync.mqtt_client import LinkCallbacks, MqttLink, probe_broker, tls_context
from sync.topics import Topics
from testing.peers import wait_until
from testing.tls import TlsMosquitto, TownCa


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> TownCa:
    return TownCa(tmp_path_factory.mktemp("pki") / "town")


@pytest.fixture(scope="module")
def pki(town: TownCa, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rogue = TownCa(tmp_path_factory.mktemp("pki") / "rogue", "Rogue CA")
    files: dict[str, Path] = {"ca": town.crt, "rogue_ca": rogue.crt}
    files["server_crt"], files["server_key"] = town.issue("127.0.0.1", ["127.0.0.1", "localhost"])
    files["elsewhere_crt"], files["elsewhere_key"] = town.issue(
        "broker.elsewhere.example", ["broker.elsewhere.example"]
    )
    for cn in ("gw-a", "gw-b", "platform"):
        files[f"{cn}_crt"], files[f"{cn}_key"] = town.issue(cn)
    files["rogue_crt"], files["rogue_key"] = rogue.issue("gw-a")
    files["expired_crt"], files["expired_key"] = town.issue("gw-a", expired=True)
    files["expired_server_crt"], files["expired_server_key"] = town.issue("127.0.0.1", ["127.0.0.1"], expired=True)
    return files


@pytest.fixture(scope="module")
def broker(town: TownCa, pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMosquitto]:
    b = TlsMosquitto(tmp_path_factory.mktemp("broker"), town, pki["server_crt"], pki["server_key"])
    b.start()
    yield b
    b.stop()


def _cfg(pki: dict[str, Path], port: int, who: str | None = "gw-a", **changes: object) -> MqttConfig:
    values: dict[str, object] = {"host": "127.0.0.1", "port": port, "tls": True, "ca_file": pki["ca"],
                                 "reconnect_max_s": 1}  # fmt: skip
    if who is not None:
        values |= {"cert_file": pki[f"{who}_crt"], "key_file": pki[f"{who}_key"]}
    values |= changes
    return MqttConfig(**values)  # type: ignore[arg-type]


class Peer:
    """A bare paho client over TLS with a certificate: the platform, or another gateway."""

    def __init__(self, pki: dict[str, Path], port: int, who: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{who}", clean_session=True)
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.load_cert_chain(str(pki[f"{who}_crt"]), str(pki[f"{who}_key"]))
        self.client.tls_set_context(context)
        self.client.on_message = lambda c, u, msg: self.messages.append((msg.topic, msg.payload))
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_until(self.client.is_connected, 5, what=f"{who} connected")

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(5), "no SUBACK"

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Received:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes, retained: bool) -> None:
        self.messages.append((topic, payload))


def _link(cfg: MqttConfig, gateway_id: str = "gw-a", received: Received | None = None) -> MqttLink:
    callbacks = LinkCallbacks(on_message=received) if received is not None else LinkCallbacks()
    return MqttLink(cfg, Topics("accessgw", gateway_id), callbacks)


def refused(cfg: MqttConfig, linger_s: float = 0.0) -> str:
    """Start a link that the broker or the TLS check must refuse; its `last_error` once it has one.

    `linger_s`: stay through several retries first (they must not log again)."""
    link = _link(cfg)
    link.start()
    try:
        wait_until(lambda: link.last_error, 10, what="last_error")
        time.sleep(linger_s)
        assert not link.connected
    finally:
        link.stop(publish_offline=False)
    return link.last_error or ""


# --- config -------------------------------------------------------------------------------------


def test_config_wants_cert_and_key_together_and_tls(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key_file is not"):
        MqttConfig(tls=True, cert_file=tmp_path / "gw.crt")
    with pytest.raises(ValueError, match="cert_file is not"):
        MqttConfig(tls=True, key_file=tmp_path / "gw.key")
    with pytest.raises(ValueError, match="need tls"):
        MqttConfig(cert_file=tmp_path / "gw.crt", key_file=tmp_path / "gw.key")
    with pytest.raises(ValueError, match="path of the PEM file"):
        MqttConfig(tls=True, cert_file=tmp_path / "gw.crt", key_file="-----BEGIN PRIVATE KEY-----\nMIG...\n")  # type: ignore[arg-type]
    assert MqttConfig(tls=True, cert_file=tmp_path / "c", key_file=tmp_path / "k").key_file == tmp_path / "k"


def test_tls_context_verifies_the_broker_and_its_name_with_tls_1_2_or_later(pki: dict[str, Path]) -> None:
    context = tls_context(_cfg(pki, 8883))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1, "the town CA alone, not also the system store"


# --- (a) a gateway with its certificate ---------------------------------------------------------


def test_gateway_with_its_certificate_connects_and_is_online(pki: dict[str, Path], broker: TlsMosquitto) -> None:
    platform = Peer(pki, broker.port, "platform")
    try:
        platform.subscribe("accessgw/+/availability")
        link = _link(_cfg(pki, broker.port))
        link.start()
        try:
            wait_until(lambda: link.connected, 10, what="gw-a connected over TLS")
            wait_until(lambda: ("accessgw/gw-a/availability", b"online") in platform.messages, 5, what="online")
            assert link.last_error is None
            mid = link.publish("accessgw/gw-a/events/entry", '{"id": "e1"}')
            assert mid is not None
        finally:
            link.stop()
        wait_until(lambda: ("accessgw/gw-a/availability", b"offline") in platform.messages, 5, what="offline")
    finally:
        platform.close()


# --- (b) no certificate, or one from another CA -------------------------------------------------


def test_a_client_without_certificate_is_refused(
    pki: dict[str, Path], broker: TlsMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sync.mqtt_client"):
        error = refused(_cfg(pki, broker.port, who=None), linger_s=2.5)  # several retries (reconnect_max_s 1)
    assert "requires a client certificate" in error
    lines = [r for r in caplog.records if "client certificate" in r.getMessage()]
    # One line, not one per retry; two when a TLS 1.3 alert lost in the broker's reset gave a guess first.
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_certificate_from_another_ca_is_refused(pki: dict[str, Path], broker: TlsMosquitto) -> None:
    cfg = _cfg(pki, broker.port, who=None, cert_file=pki["rogue_crt"], key_file=pki["rogue_key"])
    assert "refused our client certificate" in refused(cfg)


# --- (c) the ACL: requests come from the platform only ------------------------------------------


def test_only_the_platform_can_send_a_gateway_requests(pki: dict[str, Path], broker: TlsMosquitto) -> None:
    received = Received()
    link = _link(_cfg(pki, broker.port), received=received)
    other = Peer(pki, broker.port, "gw-b")
    platform = Peer(pki, broker.port, "platform")
    try:
        link.start()
        wait_until(lambda: link.connected, 10, what="gw-a connected")
        time.sleep(0.3)  # its SUBACK
        other.publish("accessgw/gw-a/request/door/open", "from gw-b")
        link.publish("accessgw/gw-a/request/door/open", "from gw-a itself")
        platform.publish("accessgw/gw-a/request/door/open", "from the platform")
        wait_until(lambda: received.messages, 5, what="the platform's request")
        time.sleep(0.5)
        assert received.messages == [("accessgw/gw-a/request/door/open", b"from the platform")]
    finally:
        link.stop()
        other.close()
        platform.close()


def test_a_gateway_reads_only_its_own_requests_and_writes_only_its_own_topics(
    pki: dict[str, Path], broker: TlsMosquitto
) -> None:
    gw_b = Peer(pki, broker.port, "gw-b")
    platform = Peer(pki, broker.port, "platform")
    try:
        gw_b.subscribe("accessgw/gw-a/#")  # not its own: nothing is delivered
        gw_b.subscribe("accessgw/gw-b/request/#")
        platform.subscribe("$share/platform/accessgw/+/events/#")  # DESIGN §6.3: the platform's shared subscription
        platform.publish("accessgw/gw-a/request/state", "for gw-a")
        gw_b.publish("accessgw/gw-a/events/entry", "forged by gw-b")
        gw_b.publish("accessgw/gw-b/events/entry", "gw-b's own")
        platform.publish("accessgw/gw-b/request/state", "for gw-b")
        wait_until(lambda: ("accessgw/gw-b/request/state", b"for gw-b") in gw_b.messages, 5, what="gw-b's request")
        wait_until(lambda: platform.messages, 5, what="gw-b's event at the platform")
        time.sleep(0.5)
        assert gw_b.messages == [("accessgw/gw-b/request/state", b"for gw-b")]
        assert platform.messages == [("accessgw/gw-b/events/entry", b"gw-b's own")]
    finally:
        gw_b.close()
        platform.close()


# --- (d) a wrong CA, a host name mismatch, an unreadable key: one clear error, no crash ----------


def test_wrong_ca_is_one_clear_error_and_the_link_keeps_trying(
    pki: dict[str, Path], broker: TlsMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sync.mqtt_client"):
        error = refused(_cfg(pki, broker.port, ca_file=pki["rogue_ca"]), linger_s=2.5)
    assert "not signed by mqtt.ca_file" in error
    assert len([r for r in caplog.records if "ca_file" in r.getMessage()]) == 1
    assert all(r.exc_info is None for r in caplog.records)


def test_host_name_mismatch_is_one_clear_error(town: TownCa, pki: dict[str, Path], tmp_path: Path) -> None:
    elsewhere = TlsMosquitto(tmp_path / "elsewhere", town, pki["elsewhere_crt"], pki["elsewhere_key"])
    elsewhere.start()
    try:
        cfg = _cfg(pki, elsewhere.port)
        assert "not for the name '127.0.0.1'" in refused(cfg)
        assert "not for the name '127.0.0.1'" in (probe_broker(cfg) or "")
    finally:
        elsewhere.stop()


def test_expired_certificates_are_named(
    town: TownCa, pki: dict[str, Path], broker: TlsMosquitto, tmp_path: Path
) -> None:
    expired_client = _cfg(pki, broker.port, cert_file=pki["expired_crt"], key_file=pki["expired_key"])
    assert "refused our client certificate" in refused(expired_client)  # "…: it has expired", if its alert arrives
    old = TlsMosquitto(tmp_path / "old", town, pki["expired_server_crt"], pki["expired_server_key"])
    old.start()
    try:
        assert "certificate has expired" in refused(_cfg(pki, old.port))
    finally:
        old.stop()


def test_unreadable_key_does_not_crash_and_is_retried(
    pki: dict[str, Path], broker: TlsMosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "gw-a.key"  # not there yet: e.g. the credential is installed after the daemon started
    with caplog.at_level(logging.WARNING, logger="sync.mqtt_client"):
        link = _link(_cfg(pki, broker.port, key_file=key))  # must not raise
        assert "cannot read mqtt.key_file" in (link.last_error or "")
        link.start()
        try:
            time.sleep(1.5)
            assert not link.connected
            key.write_bytes(pki["gw-a_key"].read_bytes())
            key.chmod(0o600)
            wait_until(lambda: link.connected, 10, what="connected once the key is there")
            assert link.last_error is None
        finally:
            link.stop()
    assert len([r for r in caplog.records if "key_file" in r.getMessage()]) == 1


# --- (e) accessgw check ---------------------------------------------------------------------------


def test_probe_broker_over_tls(pki: dict[str, Path], broker: TlsMosquitto, tmp_path: Path) -> None:
    assert probe_broker(_cfg(pki, broker.port)) is None
    assert probe_broker(_cfg(pki, broker.port, host="localhost")) is None
    assert "requires a client certificate" in (probe_broker(_cfg(pki, broker.port, who=None)) or "")
    assert "not signed by mqtt.ca_file" in (probe_broker(_cfg(pki, broker.port, ca_file=pki["rogue_ca"])) or "")
    rogue = _cfg(pki, broker.port, who=None, cert_file=pki["rogue_crt"], key_file=pki["rogue_key"])
    assert "refused our client certificate" in (probe_broker(rogue) or "")
    missing = probe_broker(_cfg(pki, broker.port, cert_file=tmp_path / "none.crt"))
    assert missing is not None and "cannot read mqtt.cert_file" in missing
