"""OSDP readers (DESIGN §4 (c)) against libosdp's own peripheral-device side on a socat pty pair,
the secure channel on: card reads, several addresses on one bus, LED/buzzer feedback, tamper, a
replaced reader back in seconds, a wrong key refused; and through `accessgw run` to the entry log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import osdp
import pytest

from config.models import GatewayConfig, ReaderConfig, check_references
from drivers.events import BadFrame, CardPresented, ReaderStatus, ReaderTamper
from drivers.frames import Card, FrameError
from drivers.osdp_bus import OsdpBus
from drivers.osdp_codec import ASCII_CARD_BITS, card_of_read, feedback_commands, tamper_of
from drivers.osdp_reader import osdp_readers, probe_osdp_readers
from drivers.simulators import VirtualSerialLink
from drivers.wiegand import encode_wiegand
from gateway.store.db import open_store
from gateway.store.roster import NewTenant, add_card, add_tenant
from testing.gateway import ROOT, DoorPeers, GatewayProcess, gateway_config
from testing.osdp import BusLine, SimulatedOsdpReader, left_aligned, new_scbk
from testing.peers import Mosquitto, Subscriber, wait_until
from tests.drivers.support import Events

GREEN, RED = osdp.CommandLEDColor.Green, osdp.CommandLEDColor.Red


def read_event(bits: str) -> dict[str, Any]:
    return {"event": osdp.Event.CardRead, "format": osdp.CardFormat.Wiegand, "length": len(bits),
            "data": left_aligned(bits)}  # fmt: skip


# --- translation, no I/O -------------------------------------------------------------------------


def test_raw_wiegand_reads_are_left_aligned_and_parity_checked() -> None:
    assert card_of_read(read_event(encode_wiegand(0x123456, 26))) == Card(0x123456, 26)
    assert card_of_read(read_event(encode_wiegand(0xFEDCBA98, 34))) == Card(0xFEDCBA98, 34)
    flipped = encode_wiegand(0x123456, 26)
    flipped = flipped[:5] + ("1" if flipped[5] == "0" else "0") + flipped[6:]
    with pytest.raises(FrameError) as bad:
        card_of_read(read_event(flipped))
    assert bad.value.kind == "parity"
    with pytest.raises(FrameError) as short:  # 26 bits announced, 2 bytes sent
        card_of_read({**read_event(encode_wiegand(1, 26)), "data": b"\x00\x00"})
    assert short.value.kind == "length"
    with pytest.raises(FrameError) as odd:
        card_of_read(read_event("1" * 30))
    assert odd.value.kind == "length"


def test_ascii_reads_and_local_status() -> None:
    ascii_read = {"event": osdp.Event.CardRead, "format": osdp.CardFormat.ASCII, "data": b"305419896"}
    assert card_of_read(ascii_read) == Card(305419896, ASCII_CARD_BITS)
    for data, kind in ((b"12a4", "garbage"), (b"99999999999", "overlong")):
        with pytest.raises(FrameError) as bad:
            card_of_read({**ascii_read, "data": data})
        assert bad.value.kind == kind
    local = osdp.StatusReportType.Local
    assert tamper_of({"type": local, "report": b"\x01\x00"}) is True
    assert tamper_of({"type": local, "report": b"\x00\x01"}) is False
    assert tamper_of({"type": osdp.StatusReportType.Input, "report": b"\x01"}) is None


def test_feedback_is_green_and_one_beep_or_red_and_two() -> None:
    led, beep = feedback_commands(True)
    assert (led["command"], led["on_color"], led["off_color"], led["temporary"]) == (
        osdp.Command.LED,
        GREEN,
        GREEN,
        True,
    )
    assert (beep["command"], beep["rep_count"]) == (osdp.Command.Buzzer, 1)
    led, beep = feedback_commands(False)
    assert (led["on_color"], beep["rep_count"]) == (RED, 2)


def osdp_reader(rid: str, port: str, address: int, key: bytes, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "protocol": "osdp", "port": port, "address": address, "scbk": key.hex(), **extra}


def test_config_osdp_readers_and_their_bus() -> None:
    key = new_scbk()
    reader = ReaderConfig.model_validate(osdp_reader("r1", "/dev/ttyUSB0", 5, key))
    assert (reader.baudrate, reader.scbk_bytes, reader.install_mode) == (115200, key, False)
    assert key.hex() not in repr(reader)  # a secret stays out of logs and tracebacks
    for bad, words in (
        ({"scbk": "00" * 15}, "32 hex characters"),
        ({"scbk": "zz" * 16}, "32 hex characters"),
        ({"address": 127}, "less than or equal to 126"),
    ):
        with pytest.raises(ValueError, match=words):
            ReaderConfig.model_validate(osdp_reader("r1", "/dev/ttyUSB0", 5, key) | bad)
    with pytest.raises(ValueError, match="needs 'scbk'"):
        ReaderConfig.model_validate({"id": "r1", "protocol": "osdp", "port": "/dev/ttyUSB0", "address": 1})
    with pytest.raises(ValueError, match="only for protocol osdp"):
        ReaderConfig.model_validate({"id": "r1", "protocol": "rdm6300", "port": "/dev/ttyUSB0", "address": 1})

    def check(*readers: dict[str, Any]) -> None:
        check_references(GatewayConfig.model_validate({"gateway_id": "gw", "readers": list(readers)}))

    check(osdp_reader("r1", "/dev/ttyUSB0", 0, key), osdp_reader("r2", "/dev/ttyUSB0", 1, key))
    with pytest.raises(ValueError, match="like reader 'r1'"):
        check(osdp_reader("r1", "/dev/ttyUSB0", 0, key), osdp_reader("r2", "/dev/ttyUSB0", 0, key))
    with pytest.raises(ValueError, match="one bus has one speed"):
        check(osdp_reader("r1", "/dev/ttyUSB0", 0, key), osdp_reader("r2", "/dev/ttyUSB0", 1, key, baudrate=9600))
    with pytest.raises(ValueError, match="only osdp readers share a port"):
        check(osdp_reader("r1", "/dev/ttyUSB0", 0, key), {"id": "r2", "protocol": "rdm6300", "port": "/dev/ttyUSB0"})


# --- the driver against libosdp's peripheral device ----------------------------------------------


class OsdpBench:
    """A pty pair as the RS-485 bus: simulated readers on one end, the gateway's bus on the other."""

    def __init__(self, folder: Path, events: Events) -> None:
        self.link = VirtualSerialLink(folder / "osdp-pd", folder / "osdp-gw")
        self.port = str(folder / "osdp-gw")
        self.events = events
        self.line = BusLine(self.link.a)
        self.readers: list[SimulatedOsdpReader] = []
        self.bus: OsdpBus | None = None

    def reader(self, address: int, key: bytes | None, **kwargs: Any) -> SimulatedOsdpReader:
        reader = SimulatedOsdpReader(self.line, address, key, **kwargs)
        self.readers.append(reader)
        reader.start()
        return reader

    def start_bus(self, *configs: dict[str, Any]) -> OsdpBus:
        self.bus = OsdpBus(self.port, [ReaderConfig.model_validate(c) for c in configs], self.events)
        self.bus.start()
        return self.bus

    def wait_online(self, *readers: str, timeout: float = 10) -> None:
        assert self.bus is not None
        bus = self.bus
        wait_until(lambda: all(bus.is_online(r) for r in readers), timeout, 0.02, f"{readers} online")

    def close(self) -> None:
        if self.bus is not None:
            self.bus.stop()
        for reader in self.readers:
            reader.stop()
        self.line.close()
        self.link.close()


@pytest.fixture
def bench(tmp_path: Path, events: Events) -> Iterator[OsdpBench]:
    b = OsdpBench(tmp_path, events)
    try:
        yield b
    finally:
        b.close()


def test_two_readers_on_one_bus_read_cards_with_a_secure_channel(bench: OsdpBench, events: Events) -> None:
    key0, key1 = new_scbk(), new_scbk()  # each reader has its own key
    pd0, pd1 = bench.reader(0, key0), bench.reader(1, key1)
    bench.start_bus(osdp_reader("r0", bench.port, 0, key0), osdp_reader("r1", bench.port, 1, key1))
    bench.wait_online("r0", "r1")
    assert pd0.secure and pd1.secure
    assert sorted((e.reader, e.online) for e in events.of(ReaderStatus)) == [("r0", True), ("r1", True)]
    pd0.swipe(0x123456, 26)
    events.wait(lambda e: isinstance(e, CardPresented) and e.reader == "r0")
    pd1.swipe(0x12345678, 34)
    events.wait(lambda e: isinstance(e, CardPresented) and e.reader == "r1")
    good = encode_wiegand(0x1234, 26)
    pd1.raw_read(("0" if good[0] == "1" else "1") + good[1:])  # the leading parity bit flipped
    bad = events.wait(lambda e: isinstance(e, BadFrame))
    assert (bad.reader, bad.kind) == ("r1", "parity")
    pd0.swipe(7, 34)
    events.wait(lambda e: isinstance(e, CardPresented) and e.card_number == 7)
    cards = [(e.reader, e.card_number, e.card_bits) for e in events.of(CardPresented)]
    assert cards == [("r0", 0x123456, 26), ("r1", 0x12345678, 34), ("r0", 7, 34)]  # the bad read is no card


def test_feedback_and_tamper(bench: OsdpBench, events: Events) -> None:
    key = new_scbk()
    pd0, pd1 = bench.reader(0, key), bench.reader(1, key)
    bus = bench.start_bus(osdp_reader("r0", bench.port, 0, key), osdp_reader("r1", bench.port, 1, key))
    bench.wait_online("r0", "r1")
    bus.feedback("r0", True)
    bus.feedback("r1", False)
    led, beep = pd0.wait_commands(2)
    assert (led["command"], led["on_color"], beep["command"], beep["rep_count"]) == (
        osdp.Command.LED, GREEN, osdp.Command.Buzzer, 1)  # fmt: skip
    led, beep = pd1.wait_commands(2)
    assert (led["command"], led["on_color"], beep["command"], beep["rep_count"]) == (
        osdp.Command.LED, RED, osdp.Command.Buzzer, 2)  # fmt: skip

    pd1.tamper(True)
    assert events.wait(lambda e: isinstance(e, ReaderTamper)).active is True
    mark = events.mark()
    pd1.tamper(True)  # the same state again is not news
    pd1.tamper(False)
    cleared = events.wait(lambda e: isinstance(e, ReaderTamper), after=mark)
    assert (cleared.reader, cleared.active) == ("r1", False)
    assert [(e.reader, e.active) for e in events.of(ReaderTamper)] == [("r1", True), ("r1", False)]


def test_install_mode_pairs_a_factory_reader(bench: OsdpBench, events: Events) -> None:
    """First pairing: a reader with no key of its own (SCBK-D) is given the configured scbk; after that the
    ordinary, enforced secure channel works with it."""
    key = new_scbk()
    factory = bench.reader(4, None, install_mode=True)
    bench.start_bus(osdp_reader("r4", bench.port, 4, key, install_mode=True))
    bench.wait_online("r4")
    assert factory.secure
    assert bench.bus is not None
    bench.bus.stop()
    mark = events.mark()
    bench.start_bus(osdp_reader("r4", bench.port, 4, key))  # install_mode off
    bench.wait_online("r4")
    factory.swipe(42, 34)
    events.wait(lambda e: isinstance(e, CardPresented) and e.card_number == 42, after=mark)


@pytest.mark.slow
def test_a_wrong_key_stays_offline(bench: OsdpBench, events: Events) -> None:
    """The secure channel is required: a reader whose key differs is offline (reader_offline), never used."""
    pd = bench.reader(2, new_scbk())
    bench.start_bus(osdp_reader("r2", bench.port, 2, new_scbk()))
    down = events.wait(lambda e: isinstance(e, ReaderStatus), timeout=8)
    assert (down.reader, down.online) == ("r2", False)
    assert "secure channel" in (down.error or "")
    pd.swipe(1, 26)
    time.sleep(0.5)
    assert not pd.secure
    assert not events.of(CardPresented) and [e.online for e in events.of(ReaderStatus)] == [False]


@pytest.mark.slow
def test_a_replaced_reader_is_back_within_30_s(bench: OsdpBench, events: Events) -> None:
    """libosdp alone would wait 300 s before asking a silent reader again (DESIGN §10)."""
    key = new_scbk()
    old = bench.reader(0, key)
    bench.start_bus(osdp_reader("r0", bench.port, 0, key))
    bench.wait_online("r0")
    old.stop()  # unplugged
    mark = events.mark()
    down = events.wait(lambda e: isinstance(e, ReaderStatus), timeout=20, after=mark)
    assert down.online is False
    replaced = time.monotonic()
    new = bench.reader(0, key)  # a new reader (same address and key) on the same bus
    up = events.wait(lambda e: isinstance(e, ReaderStatus) and e.online, timeout=30, after=mark)
    back_s = time.monotonic() - replaced
    print(f"replaced OSDP reader back online after {back_s:.1f} s")
    assert up.reader == "r0" and back_s < 30
    new.swipe(99, 34)
    events.wait(lambda e: isinstance(e, CardPresented) and e.card_number == 99)


def test_an_unplugged_converter_takes_its_bus_offline_until_it_is_back(bench: OsdpBench, events: Events) -> None:
    key = new_scbk()
    bench.reader(0, key)
    bench.start_bus(osdp_reader("r0", bench.port, 0, key, reconnect_max_s=1))
    bench.wait_online("r0")
    for reader in bench.readers:
        reader.stop()
    bench.line.close()
    bench.link.close()  # socat gone: the USB adapter pulled out
    down = events.wait(lambda e: isinstance(e, ReaderStatus) and not e.online, timeout=5)
    assert "Input/output error" in (down.error or "") or "hung up" in (down.error or "")
    bench.link.reopen()
    bench.line = BusLine(bench.link.a)
    new = bench.reader(0, key)
    bench.wait_online("r0", timeout=10)
    new.swipe(5, 34)
    events.wait(lambda e: isinstance(e, CardPresented) and e.card_number == 5)


@pytest.mark.slow
def test_osdp_readers_share_their_bus_and_the_probe_says_who_answers(bench: OsdpBench, events: Events) -> None:
    key = new_scbk()
    bench.reader(0, key)
    configs = [ReaderConfig.model_validate(osdp_reader(f"r{a}", bench.port, a, key)) for a in (0, 1)]
    readers = osdp_readers(configs, events)
    assert readers["r0"].bus is readers["r1"].bus
    answers = probe_osdp_readers(configs, timeout=2)
    assert answers["r0"] is None
    assert "address 1" in (answers["r1"] or "")  # nobody at address 1
    readers["r0"].start()  # the gateway runs: `accessgw check` must not disturb its bus
    try:
        wait_until(lambda: readers["r0"].online, 10, 0.02, "r0 online")
        locked = probe_osdp_readers(configs, timeout=0.5)
        assert "lock" in (locked["r0"] or ""), locked
        assert readers["r0"].online
    finally:
        readers["r1"].stop()


# --- through the gateway: card at the reader → decision → entry, relay, feedback; tamper → alert --


@pytest.mark.slow
def test_gateway_decides_osdp_cards_and_shows_the_decision(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_scbk()
    monkeypatch.setenv("OSDP_SCBK_R1", key.hex())  # as a systemd credential would give it
    peers = DoorPeers(tmp_path / "ports", protocol=None)
    link = VirtualSerialLink(tmp_path / "ports" / "osdp-pd", tmp_path / "ports" / "osdp-gw")
    line = BusLine(link.a)
    reader = SimulatedOsdpReader(line, 0, key)
    reader.start()
    reader_cfg = {"id": "r1", "protocol": "osdp", "port": str(tmp_path / "ports" / "osdp-gw"), "address": 0,
                  "scbk": "${OSDP_SCBK_R1}", "repeat_suppress_ms": 0}  # fmt: skip
    config = gateway_config(tmp_path / "data", mosquitto.port, readers=[reader_cfg],
                            io_modules=[peers.io_config()], doors=[peers.card_door(300, inputs=False)])  # fmt: skip
    gw = GatewayProcess(tmp_path, config)
    sub = Subscriber(mosquitto.port, "accessgw/gw-test/#", client_id="platform-osdp")
    try:
        engine, sessions = open_store(tmp_path / "data")
        with sessions.begin() as s:
            add_tenant(s, NewTenant("T1", "Tenant T1", "P-T1", date.today() + timedelta(days=30)))
            add_card(s, "T1", 0x12345678)
        engine.dispose()
        # The installer's `accessgw check` first (the service is not running: the port is free).
        check = subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(gw.write_config())],
                               capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
        said = next(x for x in check.stdout.splitlines() if "reader r1" in x)
        assert said.startswith("ok") and "osdp address 0" in said and "answers with a secure channel" in said, said
        gw.start()
        reader.wait_secure(15)

        reader.swipe(0x12345678, 34)
        wait_until(lambda: len(sub.payloads("/events/entry")) >= 1, 10, what=f"an entry\n{gw.log_tail()}")
        led, beep = reader.wait_commands(2)
        assert (led["on_color"], beep["rep_count"]) == (GREEN, 1)
        reader.swipe(0x0BAD, 26)
        wait_until(lambda: len(sub.payloads("/events/entry")) >= 2, 10, what="a second entry")
        led, beep = reader.wait_commands(4)[2:]
        assert (led["on_color"], beep["rep_count"]) == (RED, 2)
        entries = sub.payloads("/events/entry")
        assert [(e["decision"], e["reason"], e["card_number"], e["card_bits"], e["tenant_id"]) for e in entries] == [
            ("granted", "granted", 0x12345678, 34, "T1"),
            ("denied", "unknown_card", 0x0BAD, 26, None),
        ]
        wait_until(lambda: any(w[2] for w in peers.board.write_history() if w[1] == 0), 5, what="the relay pulsed")

        reader.tamper(True)
        reader.tamper(False)

        def tampers() -> list[tuple[str, dict[str, Any]]]:
            return [(a["state"], a["details"]) for a in sub.payloads("/events/alert") if a["kind"] == "tamper"]

        wait_until(lambda: len(tampers()) >= 2, 10, what=f"tamper raised and cleared\n{gw.log_tail()}")
        assert tampers() == [("raised", {"source": "reader", "reader": "r1"}),
                             ("cleared", {"source": "reader", "reader": "r1"})]  # fmt: skip
        states = [json.loads(raw) for raw in sub.raw("/state")]
        assert key.hex() not in gw.log() and key.hex() not in json.dumps(states)  # the key stays secret
    finally:
        gw.stop()
        sub.close()
        reader.stop()
        line.close()
        link.close()
        peers.close()
