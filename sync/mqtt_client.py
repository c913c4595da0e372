"""The one module that imports paho: a small facade over its client.

paho runs its network loop in its own thread; every callback given here is
called from that thread, so callers must hand work over to their own loop.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from config.models import MqttConfig
from sync.topics import Topics

log = logging.getLogger(__name__)


@dataclass
class LinkCallbacks:
    on_connected: Callable[[], None] = lambda: None
    on_disconnected: Callable[[str], None] = lambda reason: None
    on_ack: Callable[[int], None] = lambda mid: None
    on_message: Callable[[str, bytes, bool], None] = lambda topic, payload, retained: None


class MqttLink:
    """One connection to the broker: LWT, retained availability, reconnects."""

    def __init__(self, cfg: MqttConfig, topics: Topics, callbacks: LinkCallbacks, max_inflight: int = 200) -> None:
        self._cfg = cfg
        self._topics = topics
        self._cb = callbacks
        self._connected = threading.Event()
        self.last_error: str | None = None
        client_id = cfg.client_id or f"accessgw-{topics.gateway_id}"
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(min_delay=1, max_delay=int(max(1, cfg.reconnect_max_s)))
        _authenticate(self._client, cfg)
        self._client.will_set(topics.availability, "offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_subscribe = self._on_subscribe
        self._unreachable_logged = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        self._client.connect_async(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s)
        self._client.loop_start()

    def stop(self, publish_offline: bool = True) -> None:
        if publish_offline and self.connected:
            info = self._client.publish(self._topics.availability, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Send one message; returns its mid, or None when it was not accepted."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return info.mid

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"broker refused connection: {reason}"
            log.warning("MQTT %s", self.last_error)
            return
        client.subscribe(self._topics.requests, qos=1)  # "online" follows its SUBACK: ready for requests
        self._connected.set()
        self.last_error = None
        self._unreachable_logged = False
        log.info("MQTT connected to %s:%s", self._cfg.host, self._cfg.port)
        self._cb.on_connected()

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected:
            self.last_error = f"disconnected: {reason}"
            log.warning("MQTT %s", self.last_error)
        self._cb.on_disconnected(str(reason))

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, reasons: object, props: object) -> None:
        client.publish(self._topics.availability, "online", qos=1, retain=True)

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        self.last_error = f"broker {self._cfg.host}:{self._cfg.port} not reachable"
        if not self._unreachable_logged:  # once, not at every retry
            log.warning("MQTT %s; events are kept in the outbox until it answers", self.last_error)
            self._unreachable_logged = True

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        self._cb.on_ack(mid)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self._cb.on_message(msg.topic, msg.payload, bool(msg.retain))


def _authenticate(client: paho.Client, cfg: MqttConfig) -> None:
    """Credentials and TLS, the same for the link and for `accessgw check` (one place to get them right)."""
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password is not None else None)
    if cfg.tls:
        client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None, cert_reqs=ssl.CERT_REQUIRED)


def probe_broker(cfg: MqttConfig, timeout_s: float = 3.0) -> str | None:
    """For `accessgw check`: None when the broker accepts us, else why not."""
    answered = threading.Event()
    outcome: list[str | None] = [f"no answer within {timeout_s:.0f} s"]

    def on_connect(client: paho.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        outcome[0] = f"refused: {reason}" if getattr(reason, "is_failure", False) else None
        answered.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    _authenticate(client, cfg)
    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, keepalive=10)
    except OSError as exc:
        return f"cannot connect to {cfg.host}:{cfg.port}: {exc}"
    client.loop_start()
    answered.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    return outcome[0]
