"""SerialCardReader against a simulated reader over a real pty link (socat)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.models import ReaderConfig
from drivers.events import BadFrame, CardPresented, ReaderStatus
from drivers.serial_reader import SerialCardReader
from drivers.simulators import SimulatedCardReader, VirtualSerialLink
from tests.drivers.support import Events


@pytest.fixture
def make_reader(events: Events) -> Iterator[Callable[..., SerialCardReader]]:
    readers: list[SerialCardReader] = []

    def make(port: str, protocol: str = "wiegand-text", **kwargs: object) -> SerialCardReader:
        cfg = ReaderConfig(id="r1", protocol=protocol, port=port, reconnect_max_s=0.5)
        reader = SerialCardReader(cfg, events, **kwargs)  # type: ignore[arg-type]
        readers.append(reader)
        reader.start()
        return reader

    try:
        yield make
    finally:
        for reader in readers:
            reader.stop()


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimulatedCardReader]]:
    sims: list[SimulatedCardReader] = []

    def make(port: str, protocol: str = "wiegand-text") -> SimulatedCardReader:
        sim = SimulatedCardReader(port, protocol)  # type: ignore[arg-type]
        sims.append(sim)
        return sim

    try:
        yield make
    finally:
        for sim in sims:
            sim.close()


def is_card(number: int) -> Callable[[object], bool]:
    return lambda e: isinstance(e, CardPresented) and e.card_number == number


def online(value: bool) -> Callable[[object], bool]:
    return lambda e: isinstance(e, ReaderStatus) and e.online is value


def test_wiegand_swipes_and_bad_frames(make_link, make_reader, sim_factory, events: Events) -> None:
    link = make_link("rd")
    make_reader(link.a)
    events.wait(online(True))
    sim = sim_factory(link.b)
    sim.swipe(0xDEADBEEF)
    sim.swipe(0x7B11D7, bits=26)
    sim.write_raw(b"W34:0101\r\n")
    sim.write_raw(b"not a frame\n")
    sim.swipe(12345)
    events.wait(is_card(12345))
    cards = [(e.card_number, e.card_bits) for e in events.of(CardPresented)]
    assert cards == [(0xDEADBEEF, 34), (0x7B11D7, 26), (12345, 34)]
    assert [(e.reader, e.kind) for e in events.of(BadFrame)] == [("r1", "length"), ("r1", "garbage")]
    assert all(e.reader == "r1" for e in events.of(CardPresented))


def test_rdm6300_swipes_and_garbage(make_link, make_reader, sim_factory, events: Events) -> None:
    link = make_link("rdm")
    make_reader(link.a, "rdm6300")
    events.wait(online(True))
    sim = sim_factory(link.b, "rdm6300")
    sim.write_raw(b"\x0262E3086CED09\x03junk")
    sim.swipe(0xE3086CED)
    events.wait(is_card(0xE3086CED))
    assert [(e.card_number, e.card_bits) for e in events.of(CardPresented)] == [(0xE3086CED, 40)]
    assert [e.kind for e in events.of(BadFrame)] == ["checksum", "garbage"]


def test_frame_is_handled_when_its_last_byte_arrives(make_link, make_reader, sim_factory, events: Events) -> None:
    link = make_link("lat")
    make_reader(link.a)
    events.wait(online(True))
    sim = sim_factory(link.b)
    delays = []
    for number in range(1, 11):
        sim.write_raw(sim.frame(number)[:-5])  # most of the frame first, as a slow line would deliver it
        time.sleep(0.01)
        sent = time.monotonic()
        sim.write_raw(sim.frame(number)[-5:])
        event = events.wait(is_card(number), timeout=2)
        delays.append(event.mono - sent)
    # Not the 0.2 s read timeout: the read returns as soon as bytes are there.
    assert max(delays) < 0.05, delays


def test_unplug_and_replug_without_restarting(make_link, make_reader, sim_factory, events: Events) -> None:
    link = make_link("usb")
    reader = make_reader(link.a, backoff_initial_s=0.05)
    events.wait(online(True))
    sim = sim_factory(link.b)
    sim.swipe(1)
    events.wait(is_card(1))

    link.close()  # USB adapter pulled
    offline = events.wait(online(False), timeout=3)
    assert offline.error
    time.sleep(1.0)  # many reopen attempts (0.05 s doubling to 0.5 s) ...
    statuses = events.of(ReaderStatus)
    assert [s.online for s in statuses] == [True, False]  # ... but one status per transition

    link.reopen()
    mark = events.mark()
    events.wait(online(True), timeout=3, after=mark)
    sim.swipe(2)  # the simulator reopens its side too
    events.wait(is_card(2), timeout=3)
    assert reader.online
    assert [s.online for s in events.of(ReaderStatus)] == [True, False, True]


def test_missing_port_reports_offline_then_comes_online(tmp_path: Path, make_reader, events: Events) -> None:
    a, b = tmp_path / "late-a", tmp_path / "late-b"
    make_reader(str(a), backoff_initial_s=0.05)
    first = events.wait(lambda e: isinstance(e, ReaderStatus), timeout=3)
    assert first.online is False and "late-a" in (first.error or "")
    with VirtualSerialLink(a, b):
        events.wait(online(True), timeout=3)
    events.wait(online(False), timeout=3)


def test_failing_consumer_does_not_stop_the_reader(make_link, sim_factory, events: Events, caplog) -> None:
    link = make_link("bad")
    calls = []

    def emit(event: object) -> None:
        calls.append(event)
        events(event)  # type: ignore[arg-type]
        raise RuntimeError("consumer bug")

    reader = SerialCardReader(ReaderConfig(id="r1", protocol="wiegand-text", port=link.a), emit)
    reader.start()
    try:
        events.wait(online(True))
        sim = sim_factory(link.b)
        with caplog.at_level(logging.ERROR):
            sim.swipe(5)
            sim.swipe(6)
            events.wait(is_card(6))
        assert "emit failed" in caplog.text
    finally:
        reader.stop()


def test_stop_is_prompt(make_link, events: Events) -> None:
    link = make_link("stop")
    reader = SerialCardReader(ReaderConfig(id="r1", protocol="rdm6300", port=link.a), events)
    reader.start()
    events.wait(online(True))
    started = time.monotonic()
    reader.stop()
    assert time.monotonic() - started < 0.5
    assert reader._thread is None
