"""The one module that imports paho: a small facade over its client.

paho runs its network loop in its own thread; every callback given here is
called from that thread, so callers must hand work over to their own loop.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from socket import gaierror as socket_gaierror

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
    on_receipt: Callable[[bytes], None] = lambda payload: None  # the town's receipts (sync.receipts)


class _BrokerSession:
    """What every connection to the broker shares: credentials and TLS (`_authenticate`), a TLS setup
    tried again with backoff until its files can be read, paho's reconnects, and each new problem
    reported once (`last_error`, one log line) rather than at every retry."""

    _unreachable_note = ""  # what the owner does meanwhile, appended to "broker not reachable"

    def __init__(self, cfg: MqttConfig, client_id: str, *, clean_session: bool, max_inflight: int,
                 manual_ack: bool = False) -> None:  # fmt: skip
        self._cfg = cfg
        self._connected = threading.Event()
        self.last_error: str | None = None
        self._client = _Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, manual_ack=manual_ack
        )
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(min_delay=1, max_delay=int(max(1, cfg.reconnect_max_s)))
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_log = self._on_log
        self._logged_error: str | None = None  # the problem last logged: each new one once, not at every retry
        self._socket_error: str | None = None  # paho's last socket error, e.g. a TLS alert after the handshake
        self._lock = threading.Lock()
        self._running = False
        self._setup_timer: threading.Timer | None = None
        self._setup_delay = 1.0
        # A certificate that cannot be read must not stop the process: the problem is reported and the
        # setup tried again from start().
        self._ready = self._try_authenticate()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        with self._lock:
            self._running = True
            self._begin()

    def _begin(self) -> None:
        # Under self._lock. Until the TLS files can be read, try again with the link's backoff.
        if not self._running:
            return
        if not self._ready:
            self._ready = self._try_authenticate()
        if not self._ready:
            self._setup_timer = threading.Timer(self._setup_delay, self._retry_setup)
            self._setup_timer.daemon = True
            self._setup_timer.start()
            self._setup_delay = min(self._setup_delay * 2, max(1.0, self._cfg.reconnect_max_s))
            return
        self._client.connect_async(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s)
        self._client.loop_start()

    def _retry_setup(self) -> None:
        with self._lock:
            self._setup_timer = None
            self._begin()

    def _try_authenticate(self) -> bool:
        try:
            _authenticate(self._client, self._cfg)
        except TlsSetupError as exc:
            self._report(str(exc))
            return False
        return True

    def _report(self, problem: str, suffix: str = "") -> None:
        """Record a problem in last_error; log it once, not at every retry."""
        self.last_error = problem
        if problem != self._logged_error:
            log.warning("MQTT %s%s", problem, suffix)
            self._logged_error = problem

    def _halt(self) -> bool:
        """Stop retrying the setup; False when the client never got as far as connecting."""
        with self._lock:
            self._running = False
            if self._setup_timer is not None:
                self._setup_timer.cancel()
                self._setup_timer = None
        return self._ready

    def _close(self) -> None:
        self._client.disconnect()
        try:
            self._client.loop_stop()
        except AttributeError:  # paho 2.x: loop_stop() races its own thread clearing `_thread` (join on None)
            pass
        self._connected.clear()

    def _connect_refused(self, reason: object) -> bool:
        """At CONNACK: True (and reported) when the broker refused us."""
        self._socket_error = None
        if getattr(reason, "is_failure", False):
            self._report(f"broker refused connection: {reason}")
            return True
        return False

    def _connected_now(self) -> None:
        self._connected.set()
        self.last_error = None
        self._logged_error = None
        log.info("MQTT connected to %s:%s", self._cfg.host, self._cfg.port)

    def _note_disconnect(self, reason: object) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        socket_error, self._socket_error = self._socket_error, None
        if socket_error is not None and (not was_connected or _is_tls_alert(socket_error)):
            # E.g. TLS 1.3: the broker refuses our certificate only after the handshake, on the first read.
            problem = explain_tls_error(socket_error, self._cfg)
            vague = _AFTER_HANDSHAKE in problem
            if not (vague and self.last_error is not None and "client certificate" in self.last_error):
                self._report(problem)  # not replacing the broker's precise reason by a lost alert's guess
        elif was_connected:
            self._report(f"disconnected: {reason}")

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        failure = client.connect_failure if isinstance(client, _Client) else None
        if failure is not None and not isinstance(failure, ConnectionRefusedError | TimeoutError | socket_gaierror):
            self._report(explain_tls_error(failure, self._cfg), self._unreachable_note)
        else:
            self._report(f"broker {self._cfg.host}:{self._cfg.port} not reachable", self._unreachable_note)

    def _on_log(self, client: paho.Client, userdata: object, level: int, buf: str) -> None:
        if level == paho.MQTT_LOG_ERR and buf.startswith("failed to receive on socket"):
            self._socket_error = buf.removeprefix("failed to receive on socket: ")


class MqttLink(_BrokerSession):
    """One connection to the broker: LWT, retained availability, reconnects."""

    _unreachable_note = "; events are kept in the outbox until it answers"

    def __init__(self, cfg: MqttConfig, topics: Topics, callbacks: LinkCallbacks, max_inflight: int = 200) -> None:
        self._topics = topics
        self._cb = callbacks
        client_id = cfg.client_id or f"accessgw-{topics.gateway_id}"
        super().__init__(cfg, client_id, clean_session=True, max_inflight=max_inflight)
        self._client.will_set(topics.availability, "offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def stop(self, publish_offline: bool = True) -> None:
        if not self._halt():
            return
        if publish_offline and self.connected:
            info = self._client.publish(self._topics.availability, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass
        self._close()

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Send one message; returns its mid, or None when it was not accepted."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return info.mid

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if self._connect_refused(reason):
            return
        # "online" follows the SUBACK: ready for requests (and receipts)
        client.subscribe([(self._topics.requests, 1), (self._topics.receipt, 1)])
        self._connected_now()
        self._cb.on_connected()

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self._note_disconnect(reason)
        self._cb.on_disconnected(str(reason))

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, reasons: object, props: object) -> None:
        client.publish(self._topics.availability, "online", qos=1, retain=True)

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        self._cb.on_ack(mid)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if msg.topic == self._topics.receipt:
            if not msg.retain:  # a retained receipt is old news
                self._cb.on_receipt(bytes(msg.payload))
            return
        self._cb.on_message(msg.topic, msg.payload, bool(msg.retain))


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message as the SharedConsumer hands it over; give it back to `ack` once it is safe."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    retained: bool
    connection: int = 0  # which of the consumer's connections delivered it (an ack goes only to that one)


class SharedConsumer(_BrokerSession):
    """A platform instance's consumer (DESIGN §6.3): a persistent session (clean_session=False, a fixed
    client id) subscribed at QoS 1 to `filters` (e.g. `$share/platform/accessgw/+/events/#`) at every
    connect, acknowledging nothing by itself (paho's manual_ack): the owner calls `ack(msg)` once the
    message's row has committed. What is never acknowledged the broker delivers again after a
    reconnect, to this session, or under a shared subscription possibly to another member of the group.

    `on_message` runs in paho's network thread: hand the message over, do not block there. `publish`
    is for the town's requests down to the gateways (QoS 1; paho keeps up to `max_inflight` in flight).
    """

    _unreachable_note = "; events wait at the broker until it answers"

    def __init__(
        self,
        cfg: MqttConfig,
        client_id: str,
        filters: Sequence[str],
        on_message: Callable[[InboundMessage], None],
        *,
        on_connected: Callable[[], None] = lambda: None,
        on_disconnected: Callable[[str], None] = lambda reason: None,
        max_inflight: int = 1000,
    ) -> None:
        if not filters:
            raise ValueError("a consumer needs at least one topic filter")
        self._filters = list(filters)
        self._deliver = on_message
        self._on_up, self._on_down = on_connected, on_disconnected
        self._connection = 0  # counts CONNACKs: an ack must go out on the connection that got the message
        super().__init__(cfg, client_id, clean_session=False, max_inflight=max_inflight, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._subscribed = threading.Event()

    @property
    def subscribed(self) -> bool:
        """Connected and the broker has confirmed the subscriptions of this connection."""
        return self._subscribed.is_set() and self.connected

    def stop(self) -> None:
        """Disconnect. Messages not acknowledged stay in the broker's session for this client id."""
        if self._halt():
            self._close()
        self._subscribed.clear()

    def ack(self, msg: InboundMessage) -> bool:
        """Acknowledge one message (PUBACK). False when it cannot be: the connection that delivered it is
        gone (the broker delivers it again; a mid of an old connection may name another message now)."""
        if msg.qos == 0:
            return True
        if msg.connection != self._connection or not self._connected.is_set():
            return False
        return self._client.ack(msg.mid, msg.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Send one message; returns its mid, or None when it was not accepted (e.g. not connected)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return info.mid

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if self._connect_refused(reason):
            return
        self._connection += 1
        self._subscribed.clear()
        # Every connect: a session the broker lost (restarted without persistence) has no subscriptions.
        client.subscribe([(f, 1) for f in self._filters])
        self._connected_now()
        self._on_up()

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, reasons: object, props: object) -> None:
        refused = [str(r) for r in (reasons if isinstance(reasons, list) else []) if getattr(r, "is_failure", False)]
        if refused:
            self._report(f"subscription refused: {', '.join(refused)} for {', '.join(self._filters)}")
            return
        self._subscribed.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self._subscribed.clear()
        self._note_disconnect(reason)
        self._on_down(str(reason))

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # not UTF-8: no gateway publishes that; acknowledged so it does not come back
            log.warning("message on a topic that is not UTF-8 dropped (%d bytes)", len(msg.payload))
            client.ack(msg.mid, msg.qos)
            return
        inbound = InboundMessage(topic, bytes(msg.payload), msg.mid, msg.qos, bool(msg.retain), self._connection)
        try:
            self._deliver(inbound)
        except Exception:  # the owner's bug must not end paho's network thread
            log.exception("consumer callback failed on %s; the message is not acknowledged", topic[:120])


class TlsSetupError(Exception):
    """The TLS files named in the config cannot be used; the message says which and why."""


class _Client(paho.Client):
    """paho's client, keeping why the last connection attempt failed (paho only says that it did)."""

    connect_failure: OSError | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            rc = super().reconnect()
        except OSError as exc:
            self.connect_failure = exc
            raise
        self.connect_failure = None
        return rc


def tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    """The one TLS setup of the link and of `accessgw check`: TLS 1.2+, the broker's certificate
    verified against `ca_file` (else the system store) and its host name, our client certificate if set."""
    try:
        if cfg.ca_file is not None:
            _readable(cfg.ca_file, "ca_file")
        # CERT_REQUIRED and check_hostname; with a ca_file, that CA alone (not also the system store).
        context = ssl.create_default_context(cafile=None if cfg.ca_file is None else str(cfg.ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cfg.cert_file is not None:
            _readable(cfg.cert_file, "cert_file")
            if cfg.key_file is not None:
                _readable(cfg.key_file, "key_file")
            context.load_cert_chain(str(cfg.cert_file), str(cfg.key_file) if cfg.key_file else None)
    except TlsSetupError:
        raise
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        what = "ca_file" if cfg.cert_file is None else "cert_file/key_file (or ca_file)"
        raise TlsSetupError(f"TLS setup: mqtt.{what} unusable: {_reason(exc)}") from None
    return context


def _readable(path: Path, key: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TlsSetupError(f"TLS setup: cannot read mqtt.{key} {path}: {exc.strerror or exc}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.reason} ({exc.library})" if exc.library else str(exc.reason)
    return str(exc)


def _is_tls_alert(text: str) -> bool:
    return "[SSL" in text or "alert" in text.lower()


_AFTER_HANDSHAKE = "closed the connection after the TLS handshake"


def explain_tls_error(error: BaseException | str, cfg: MqttConfig) -> str:
    """One line an installer can act on, for a failed TLS connection to the broker."""
    where = f"broker {cfg.host}:{cfg.port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        code, message = error.verify_code, error.verify_message or _reason(error)
        if code == 62 or "mismatch" in message.lower():  # X509_V_ERR_HOSTNAME_MISMATCH / IP_ADDRESS_MISMATCH
            return f"TLS: {where}'s certificate is not for the name {cfg.host!r} ({message})"
        if code == 10:
            return f"TLS: {where}'s certificate has expired"
        if code in (2, 19, 20, 21):
            return f"TLS: {where}'s certificate is not signed by mqtt.ca_file ({message})"
        return f"TLS: {where}'s certificate is refused: {message}"
    text = error if isinstance(error, str) else _reason(error)
    upper = text.upper()
    for alert, meaning in (
        ("CERTIFICATE_REQUIRED", "the broker requires a client certificate (set mqtt.cert_file and mqtt.key_file)"),
        ("CERTIFICATE_EXPIRED", "the broker refused our client certificate: it has expired"),
        ("UNKNOWN_CA", "the broker refused our client certificate: not signed by the town's CA"),
        ("BAD_CERTIFICATE", "the broker refused our client certificate"),
        ("CERTIFICATE_REVOKED", "the broker refused our client certificate: revoked"),
        ("CERTIFICATE_UNKNOWN", "the broker refused our client certificate"),
        ("WRONG_VERSION_NUMBER", "the broker does not speak TLS on this port (mqtt.tls/port?)"),
        ("PROTOCOL_VERSION", "the broker does not accept TLS 1.2 or later"),
    ):
        if alert in upper:
            return f"TLS: {where}: {meaning}"
    if isinstance(error, str) and cfg.tls and ("EOF" in upper or "RESET" in upper):
        # A text is a socket error after the handshake, before CONNACK. With TLS 1.3 the broker judges our
        # certificate only then; when it closes at once, its alert may be lost in the reset.
        if cfg.cert_file is None:
            likely = "most likely it requires a client certificate (set mqtt.cert_file and mqtt.key_file)"
        else:
            likely = "most likely it refused our client certificate (the broker's log says why)"
        return f"TLS: {where} {_AFTER_HANDSHAKE}: {likely}"
    if isinstance(error, ssl.SSLError) or isinstance(error, str):
        return f"TLS: {where}: {text}"
    return f"cannot connect to {where}: {text}"


def _authenticate(client: paho.Client, cfg: MqttConfig) -> None:
    """Credentials and TLS, the same for the link and for `accessgw check` (one place to get them right).
    Raises TlsSetupError, leaving the client without TLS, when the TLS files cannot be used."""
    if cfg.tls:
        client.tls_set_context(tls_context(cfg))
        client.tls_insecure_set(False)  # the broker's host name is checked (check_hostname)
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password is not None else None)


def probe_broker(cfg: MqttConfig, timeout_s: float = 3.0) -> str | None:
    """For `accessgw check`: None when the broker accepts us, else why not."""
    answered = threading.Event()
    outcome: list[str | None] = [f"no answer within {timeout_s:.0f} s"]

    def on_connect(client: paho.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        outcome[0] = f"refused: {reason}" if getattr(reason, "is_failure", False) else None
        answered.set()

    def on_log(client: paho.Client, userdata: object, level: int, buf: str) -> None:
        if level == paho.MQTT_LOG_ERR and buf.startswith("failed to receive on socket") and not answered.is_set():
            outcome[0] = explain_tls_error(buf.removeprefix("failed to receive on socket: "), cfg)
            answered.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    try:
        _authenticate(client, cfg)
    except TlsSetupError as exc:
        return str(exc)
    client.on_connect = on_connect
    client.on_log = on_log
    try:
        client.connect(cfg.host, cfg.port, keepalive=10)
    except ssl.SSLError as exc:
        return explain_tls_error(exc, cfg)
    except OSError as exc:
        return f"cannot connect to {cfg.host}:{cfg.port}: {exc}"
    except ValueError as exc:  # e.g. an invalid host name
        return f"cannot connect to {cfg.host}:{cfg.port}: {exc}"
    client.loop_start()
    answered.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    return outcome[0]
