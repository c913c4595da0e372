"""Strict configuration models: one pydantic model per concern.

Every model forbids unknown keys so that a typo in the YAML is an error
that names the key, not a silently ignored setting.
"""

from __future__ import annotations

import base64
import ipaddress
from datetime import time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Identifier = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def path_not_pem(value: object) -> object:
    """For keys naming a PEM file: a ${NAME} secret holds the file's content, these keys want its name."""
    if isinstance(value, str) and ("-----BEGIN" in value or "\n" in value):
        raise ValueError("give the path of the PEM file, not its content")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(Strict):
    host: str = Field("127.0.0.1", title="Broker host name or address")
    port: int = Field(1883, ge=1, le=65535)
    base_topic: str = Field("accessgw", pattern=r"^[^#+\s]+$", title="Topic prefix before the gateway id")
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = Field(None, title="CA bundle for TLS; the system store when unset")
    cert_file: Path | None = Field(None, title="This gateway's client certificate (PEM, CN = gateway_id); needs tls")
    key_file: Path | None = Field(
        None, title="The private key of cert_file (PEM file, mode 0600): a path, e.g. ${CREDENTIALS_DIRECTORY}/…"
    )
    client_id: str | None = Field(None, title="MQTT client id; default accessgw-{gateway_id}")
    keepalive_s: int = Field(30, ge=5, le=3600)
    state_interval_s: float = Field(60.0, gt=0, title="How often …/state is republished")
    reconnect_max_s: float = Field(30.0, gt=0)

    @field_validator("ca_file", "cert_file", "key_file", mode="before")
    @classmethod
    def _a_path_not_pem(cls, value: object) -> object:
        return path_not_pem(value)

    @model_validator(mode="after")
    def _client_certificate(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = ("cert_file", "key_file") if self.cert_file is not None else ("key_file", "cert_file")
            raise ValueError(f"{given} is set but {missing} is not: a client certificate needs both")
        if self.cert_file is not None and not self.tls:
            raise ValueError("cert_file and key_file need tls: true")
        return self


class SyncConfig(Strict):
    platform_public_key: str | None = Field(
        None,
        title="The town platform's Ed25519 public key, base64 of 32 bytes (public; may be a ${NAME} reference); "
        "unset: only `state` requests are accepted",
    )
    max_skew_s: float = Field(300, gt=0, le=86400, title="A signed request's issued_at may differ this much")
    keep_until_receipt: bool = Field(
        False,
        title="Keep each event in the outbox until the town's signed receipt names it, not only until the "
        "broker's PUBACK (a broker restart or crash then loses nothing); needs platform_public_key",
    )
    receipt_timeout_s: float = Field(
        30, ge=1, le=3600, title="Events without a receipt this long are sent again (the wait doubles, up to 10 min)"
    )

    @field_validator("platform_public_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                raw = base64.b64decode(value, validate=True)
            except ValueError:
                raise ValueError("not base64") from None
            if len(raw) != 32:
                raise ValueError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
        return value

    @model_validator(mode="after")
    def _receipts_need_the_key(self) -> SyncConfig:
        if self.keep_until_receipt and self.platform_public_key is None:
            raise ValueError("keep_until_receipt needs platform_public_key (receipts are signed by the town)")
        return self


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    failed_auth_limit: int = Field(10, ge=1, title="Failed sign-ins per client address per minute before 429")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        title="Reverse proxies (IPs or CIDRs) whose X-Forwarded-For names the client; empty: the peer is the client",
    )
    max_exports: int = Field(2, ge=1, title="CSV exports streaming at once per API process; more wait, then 429")
    max_searches: int = Field(4, ge=1, title="Entry, alert, audit and tenant searches at once; more wait, then 429")
    tls_cert_file: Path | None = Field(
        None, title="Serve HTTPS only (TLS 1.2+) with this certificate chain (PEM file); needs tls_key_file"
    )
    tls_key_file: Path | None = Field(
        None, title="The private key of tls_cert_file (PEM file, mode 0600): a path, e.g. ${CREDENTIALS_DIRECTORY}/…"
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("tls_cert_file", "tls_key_file", mode="before")
    @classmethod
    def _a_path_not_pem(cls, value: object) -> object:
        return path_not_pem(value)

    @model_validator(mode="after")
    def _certificate_and_key(self) -> ApiConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            given, missing = ("tls_cert_file", "tls_key_file")
            if self.tls_cert_file is None:
                given, missing = missing, given
            raise ValueError(f"{given} is set but {missing} is not: HTTPS needs both")
        return self

    @property
    def scheme(self) -> str:
        """How the API is reached: https when it holds its own certificate."""
        return "http" if self.tls_cert_file is None else "https"


OSDP_BAUDRATE = 115200
_OSDP_KEYS = ("address", "scbk", "install_mode")


class ReaderConfig(Strict):
    id: str = Identifier
    protocol: Literal["wiegand-text", "rdm6300", "osdp"]
    port: str = Field(min_length=1, title="Serial device, e.g. /dev/ttyUSB0; OSDP readers on one port share its bus")
    baudrate: int = Field(9600, gt=0, title="9600 by default; 115200 for osdp")
    repeat_suppress_ms: int = Field(
        1500, ge=0, title="A read of the same card on this reader within this time is one swipe"
    )
    reconnect_max_s: float = Field(10.0, gt=0, title="Longest wait between attempts to reopen the port")
    # OSDP only (DESIGN §4 (c)): the reader's address on its RS-485 bus and its secure-channel base key.
    address: int | None = Field(None, ge=0, le=126, title="OSDP address of the reader on its bus (0-126)")
    scbk: SecretStr | None = Field(
        None, title="OSDP secure-channel base key: 32 hex characters (16 bytes), normally a ${NAME} credential"
    )
    install_mode: bool = Field(
        False,
        title="First pairing: a factory reader (default key SCBK-D) is given `scbk`; turn off once paired",
    )

    @model_validator(mode="before")
    @classmethod
    def _osdp_baudrate(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("protocol") == "osdp" and "baudrate" not in data:
            return {**data, "baudrate": OSDP_BAUDRATE}
        return data

    @field_validator("scbk")
    @classmethod
    def _scbk_hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value().strip()
            # Never echo the key itself: the message only says what is wrong with it.
            if len(text) != 32 or any(c not in "0123456789abcdefABCDEF" for c in text):
                raise ValueError(f"an SCBK is 32 hex characters (16 bytes); this is {len(text)} characters")
            return SecretStr(text)
        return value

    @model_validator(mode="after")
    def _osdp_keys(self) -> ReaderConfig:
        if self.protocol == "osdp":
            if self.address is None:
                raise ValueError("an osdp reader needs its bus 'address' (0-126)")
            if self.scbk is None:
                raise ValueError("an osdp reader needs 'scbk' (the secure channel is required), e.g. scbk: ${NAME}")
        else:
            given = [key for key in _OSDP_KEYS if getattr(self, key) not in (None, False)]
            if given:
                raise ValueError(f"{', '.join(given)}: only for protocol osdp")
        return self

    @property
    def scbk_bytes(self) -> bytes | None:
        return None if self.scbk is None else bytes.fromhex(self.scbk.get_secret_value())


class ModuleInput(Strict):
    """An input of the I/O module it is written under (no `io`: it is that module)."""

    input: int = Field(ge=0, le=1999)
    active_low: bool = Field(False, title="True when the input reads 0 in its active state")


class IoModuleConfig(Strict):
    id: str = Identifier
    protocol: Literal["modbus-rtu"] = "modbus-rtu"
    port: str = Field(min_length=1)
    baudrate: int = Field(9600, gt=0)
    unit: int = Field(1, ge=1, le=247, title="Modbus device (slave) id")
    inputs: int = Field(8, ge=0, le=2000, title="Number of discrete inputs polled from address 0")
    poll_ms: int = Field(100, ge=10, le=60000)
    timeout_s: float = Field(0.5, gt=0, le=10)
    reconnect_max_s: float = Field(10.0, gt=0)
    # The controller's cabinet holds the module: its tamper switch is the building's, not a door's.
    tamper_input: ModuleInput | None = Field(
        None, title="Cabinet tamper switch on this module: active while the cabinet is open (raises tamper)"
    )

    @model_validator(mode="after")
    def _tamper_input_polled(self) -> IoModuleConfig:
        if self.tamper_input is not None and self.tamper_input.input >= self.inputs:
            raise ValueError(f"tamper_input.input {self.tamper_input.input} is not polled (inputs: {self.inputs})")
        return self


class LockConfig(Strict):
    io: str
    coil: int = Field(ge=0, le=9999)
    pulse_ms: int = Field(3000, ge=50, le=600000)
    fail_safe: bool = Field(False, title="Unlock this door while the fire alarm input is active")


class InputRef(Strict):
    io: str
    input: int = Field(ge=0, le=1999)
    active_low: bool = Field(False, title="True when the input reads 0 in its active state")


class ScheduleWindow(Strict):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: time = Field(alias="from")
    end: time = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleWindow:
        if self.end <= self.start:
            raise ValueError("'to' must be later than 'from' (split windows that cross midnight)")
        return self


class RepeatedDenialsConfig(Strict):
    denials: int = Field(5, ge=2, title="Raise repeated_denials when the door refuses this many within within_s")
    within_s: float = Field(60.0, gt=0, le=86400, title="The sliding window; a burst ends after this long quiet")
    per_card: int | None = Field(
        3, ge=2, title="Or when one card is refused this many times within within_s; null: the door's count only"
    )


class DoorReaders(Strict):
    """An entry and an exit reader on one door: the door then knows who is inside (anti-passback)."""

    in_: str = Field(alias="in", title="The reader outside the door: its reads are entries")
    out: str = Field(title="The reader inside the door: its reads are exits")

    @model_validator(mode="after")
    def _two_readers(self) -> DoorReaders:
        if self.in_ == self.out:
            raise ValueError("'in' and 'out' must be two different readers")
        return self


class AntiPassbackConfig(Strict):
    mode: Literal["off", "soft", "hard"] = Field(
        "off", title="hard: a tenant inside is refused entry (anti_passback); soft: let in, alert; off: no check"
    )
    reset_at: time = Field(time(4, 0), title="Local time (the gateway's timezone) when everyone counts as out again")


class DoorConfig(Strict):
    id: str = Identifier
    mode: Literal["card", "face", "card_or_face", "card_and_face"] = "card"
    reader: str | None = None
    readers: DoorReaders | None = Field(None, title="Entry and exit readers ({in: r1, out: r2}) instead of `reader`")
    anti_passback: AntiPassbackConfig = Field(
        default_factory=AntiPassbackConfig, title="Refuse (hard) or report (soft) a second entry before an exit"
    )
    lock: LockConfig
    contact: InputRef | None = Field(None, title="Door contact: active while the door is open")
    exit_button: InputRef | None = None
    fire_alarm: InputRef | None = None
    held_open_s: float = Field(30.0, gt=0, title="Raise door_held_open after this long open")
    face_window_s: float = Field(10.0, gt=0, le=120)
    schedule: list[ScheduleWindow] = Field(default_factory=list, title="Weekly windows; empty = always")
    repeated_denials: RepeatedDenialsConfig | None = Field(
        None, title="Raise repeated_denials on a burst of refusals at this door; unset: not watched"
    )

    @model_validator(mode="after")
    def _readers(self) -> DoorConfig:
        if self.reader is not None and self.readers is not None:
            raise ValueError("give either 'reader' or 'readers' (in and out), not both")
        if self.anti_passback.mode != "off" and self.readers is None:
            raise ValueError("anti_passback needs 'readers: {in: …, out: …}' (an exit read says who left)")
        return self

    def reader_directions(self) -> dict[str, str | None]:
        """Each reader of this door → "in", "out", or None (a lone `reader`: no direction)."""
        if self.readers is not None:
            return {self.readers.in_: "in", self.readers.out: "out"}
        return {} if self.reader is None else {self.reader: None}


class OnvifConfig(Strict):
    host: str
    port: int = Field(80, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    profile: int = Field(0, ge=0)


class CameraConfig(Strict):
    id: str = Identifier
    onvif: OnvifConfig | None = None
    rtsp_url: str | None = None
    door: str | None = None
    fps: float = Field(10.0, gt=0, le=60)
    role: Literal["entry", "watch"] = "entry"
    stranger_after_s: float = Field(3.0, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> CameraConfig:
        if (self.onvif is None) == (self.rtsp_url is None):
            raise ValueError("a camera needs exactly one of 'onvif' or 'rtsp_url'")
        return self


class RecognitionConfig(Strict):
    detector: Literal["hog", "cnn"] = "hog"
    # From bench/face_fps.py: at 0.5 HOG misses faces under ~130 px in a 640x480 frame; 0.75 finds them for
    # ~6 ms more per frame.
    downscale: float = Field(0.75, gt=0, le=1)
    # Open-set matching (recognition/decision.py; evidence in bench/face_accuracy.py, LFW identities presented
    # as a camera shows a still photo): a tenant is accepted under `threshold`, tightened to `cohort_ratio` x
    # the distance from the tenant's templates to the nearest other tenant's (a look-alike in the building
    # needs a closer match, so a bigger building does not admit more strangers); at or under `accept_at` at
    # once, else after `min_frames` frames. Chosen on the tuning half: threshold 0.50 starts the plateau of
    # TAR; cohort_ratio 0.75 let 1 of 320 stranger presentations in with 19 tenants where 0.8 let 2 and no
    # cohort rule 6 (measured with `mirror` on), the fewest false accepts, since one is a break-in. With the
    # defaults, tuning half: TAR 97.6% / 90.0% / 79.4% with 5 / 10 / 19 tenants, strangers let in 0 / 0 / 1.
    threshold: float = Field(0.50, gt=0, lt=2)
    accept_at: float = Field(0.40, ge=0, lt=2)
    cohort_ratio: float = Field(0.75, gt=0)
    # 68-point landmarks align the face for the encoder better than dlib's 5-point default, and 10 jittered
    # encodings per enrolment photo give a steadier template (enrolment only: ~10x its encoding time); with
    # the rules above, held-out TAR at zero false accepts went from 83.3% to 97.0% with 10 tenants.
    landmarks: Literal[5, 68] = 68
    enrol_jitters: int = Field(10, ge=1, le=100)
    # Templates (enrolment and camera) that average the face and its mirror image separate tenants from
    # strangers a little better (held-out TAR with no false accept 97.0% -> 98.5% with 10 tenants, 90.9% ->
    # 93.9% with 19) but cost a second encoder run per face: the pipeline analyses half the frames (22.9 ->
    # 11.9 fps on 2 cores, bench/face_fps.py). Off by default, for buildings with several cameras; a
    # building with one or two door cameras can turn it on (re-enrol: templates must be made the same way).
    mirror: bool = False
    # An enrolment photo whose template is farther than this from each of the others' is refused: another
    # person, or the wrong face taken (0.6: dlib's own same-person tolerance).
    enrol_agreement: float = Field(0.6, gt=0, lt=2)
    min_frames: int = Field(2, ge=1, le=50)
    track_gap_s: float = Field(2.0, gt=0)
    workers: int = Field(2, ge=1, le=32)
    # The town's watch list (DESIGN §6.1) is matched stricter than tenants: a false hit sends police
    # after an innocent passer-by, a missed one only waits for the next camera. A track must average
    # at least watch_min_frames frames and its mean come within watch_threshold of a watch vector (with
    # the cohort rule above, against the other entries and the tenants), and be nearer it than any tenant.
    watch_threshold: float = Field(0.45, gt=0, lt=2)
    watch_min_frames: int = Field(3, ge=1, le=50)


class SnapshotsConfig(Strict):
    enabled: bool = True


class RetentionConfig(Strict):
    entries_days: int = Field(365, ge=1)
    snapshots_days: int = Field(30, ge=1)


class GatewayConfig(Strict):
    gateway_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", title="Unique id, used in topics")
    data_dir: Path = Field(Path("./var"), title="Database, snapshots and tokens live here")
    timezone: str | None = Field(None, title="IANA zone for permit dates and schedules; default the system's")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    readers: list[ReaderConfig] = Field(default_factory=list)
    io_modules: list[IoModuleConfig] = Field(default_factory=list)
    doors: list[DoorConfig] = Field(default_factory=list)
    cameras: list[CameraConfig] = Field(default_factory=list)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    snapshots: SnapshotsConfig = Field(default_factory=SnapshotsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class ConfigReferenceError(ValueError):
    """A config item names another item that does not exist (carries its path)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _unique(items: list, section: str) -> None:
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.id in seen:
            raise ConfigReferenceError((section, index, "id"), f"duplicate {section} id {item.id!r}")
        seen.add(item.id)


def _check_reader_ports(readers: list[ReaderConfig]) -> None:
    """Readers on one port are one RS-485 bus: only OSDP readers share one, at one speed, each at its own address."""
    first: dict[str, tuple[int, ReaderConfig]] = {}
    addresses: dict[tuple[str, int | None], str] = {}
    for index, reader in enumerate(readers):
        if reader.port not in first:
            first[reader.port] = (index, reader)
            addresses[(reader.port, reader.address)] = reader.id
            continue
        other = first[reader.port][1]
        if reader.protocol != "osdp" or other.protocol != "osdp":
            raise ConfigReferenceError(("readers", index, "port"),
                                       f"reader {reader.id!r} shares port {reader.port} with reader {other.id!r}: "
                                       "only osdp readers share a port (one bus, several addresses)")  # fmt: skip
        if reader.baudrate != other.baudrate:
            raise ConfigReferenceError(("readers", index, "baudrate"),
                                       f"reader {reader.id!r} is on {reader.port} with reader {other.id!r} at "
                                       f"{other.baudrate} baud: one bus has one speed")  # fmt: skip
        taken = addresses.setdefault((reader.port, reader.address), reader.id)
        if taken != reader.id:
            raise ConfigReferenceError(("readers", index, "address"),
                                       f"reader {reader.id!r} has address {reader.address} on {reader.port}, "
                                       f"like reader {taken!r}")  # fmt: skip


def check_references(cfg: GatewayConfig) -> None:
    """Ids are unique; doors name readers, I/O modules and cameras that exist.

    Run by the loader after validation, so that an error keeps its YAML path.
    """
    for section in ("readers", "io_modules", "doors", "cameras"):
        _unique(getattr(cfg, section), section)
    _check_reader_ports(cfg.readers)
    readers = {r.id for r in cfg.readers}
    ios = {m.id for m in cfg.io_modules}
    doors = {d.id for d in cfg.doors}
    door_cameras = {c.door for c in cfg.cameras if c.door is not None}
    reader_door: dict[str, str] = {}
    tampers = {(m.id, m.tamper_input.input) for m in cfg.io_modules if m.tamper_input is not None}
    for index, door in enumerate(cfg.doors):
        where: tuple[str | int, ...] = ("doors", index)
        if "card" in door.mode and door.reader is None and door.readers is None:
            raise ConfigReferenceError((*where, "reader"), f"door {door.id!r} in mode {door.mode} needs a reader")
        for reader, direction in door.reader_directions().items():
            loc = (*where, "readers", direction) if direction else (*where, "reader")
            if reader not in readers:
                raise ConfigReferenceError(loc, f"door {door.id!r} names unknown reader {reader!r}")
            if reader in reader_door:  # one reader, two doors: which one would a read open?
                raise ConfigReferenceError(loc, f"reader {reader!r} is already door {reader_door[reader]!r}'s")
            reader_door[reader] = door.id
        if "face" in door.mode and door.id not in door_cameras:
            raise ConfigReferenceError(
                (*where, "mode"), f"door {door.id!r} in mode {door.mode} needs a camera whose door is {door.id!r}"
            )
        for name in ("lock", "contact", "exit_button", "fire_alarm"):
            ref = getattr(door, name)
            if ref is not None and ref.io not in ios:
                raise ConfigReferenceError((*where, name, "io"), f"door {door.id!r} {name} names unknown io {ref.io!r}")
            if name != "lock" and ref is not None and (ref.io, ref.input) in tampers:
                message = f"door {door.id!r} {name} is the cabinet tamper input of io {ref.io!r}"
                raise ConfigReferenceError((*where, name, "input"), message)
    for index, cam in enumerate(cfg.cameras):
        if cam.door is not None and cam.door not in doors:
            raise ConfigReferenceError(("cameras", index, "door"), f"camera {cam.id!r} names unknown door {cam.door!r}")
