"""Card access end to end, on real peers: pty readers, a pymodbus relay board,
mosquitto, and `accessgw run` as its own process."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from drivers.wiegand import encode_wiegand
from sync.signing import new_key_pair, sign
from testing.peers import Mosquitto, wait_until
from tests.gateway.rig import Rig

pytestmark = pytest.mark.slow  # every test runs the daemon on real peers

TODAY = date.today()
DAY = timedelta(days=1)


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)
    try:
        yield r
    finally:
        r.close()


def coil_writes(rig: Rig) -> list[tuple[float, int, bool]]:
    return [w for w in rig.board.write_history() if w[1] == 0]


def test_decisions_reasons_relay_and_bad_frames(rig: Rig) -> None:
    rig.enrol("ok", 0x12345678, valid_to=TODAY + 300 * DAY)
    rig.enrol("last-day", 1001, valid_to=TODAY, valid_from=TODAY)  # both boundaries are today: valid
    rig.enrol("expired", 1002, valid_to=TODAY - DAY)
    rig.enrol("future", 1003, valid_from=TODAY + DAY, valid_to=TODAY + 30 * DAY)
    rig.enrol("susp", 1004, valid_to=TODAY + 30 * DAY, status="suspended")
    rig.enrol("rev", 1005, valid_to=TODAY + 30 * DAY, status="revoked")
    rig.start()

    rig.card.swipe(0x12345678, 34)
    first = rig.wait_entries(1)[0]
    assert (first["decision"], first["reason"], first["tenant_id"]) == ("granted", "granted", "ok")
    assert (first["card_number"], first["card_bits"], first["method"], first["door"]) == (
        0x12345678,
        34,
        "card",
        "main",
    )
    # The relay: ON now, OFF pulse_ms later.
    wait_until(lambda: len(coil_writes(rig)) >= 2, 5, what="relay pulse on and off")
    (t_on, _, v_on), (t_off, _, v_off) = coil_writes(rig)[:2]
    assert (v_on, v_off) == (True, False)
    assert abs((t_off - t_on) * 1000 - rig.pulse_ms) < 150, t_off - t_on

    for i, number in enumerate((1001, 1002, 1003, 1004, 1005, 999999)):
        rig.card.swipe(number, 34)
        rig.wait_entries(2 + i)  # decided and reported before the next card
    got = rig.wait_entries(7)
    assert [(e["tenant_id"], e["decision"], e["reason"]) for e in got[1:]] == [
        ("last-day", "granted", "granted"),
        ("expired", "denied", "permit_expired"),
        ("future", "denied", "permit_not_yet_valid"),
        ("susp", "denied", "suspended"),
        ("rev", "denied", "revoked"),
        (None, "denied", "unknown_card"),
    ]
    # The second grant's pulse is over (its OFF write): every later decision had long reached the relay.
    wait_until(lambda: len(coil_writes(rig)) >= 4, 5, what="the second grant's pulse on and off")
    assert len([w for w in coil_writes(rig) if w[2]]) == 2  # only the two grants pulsed the relay

    # Bad frames: counted, logged, no entry, and the reader keeps working.
    good = encode_wiegand(0x12345678, 34)
    flipped_first = ("1" if good[0] == "0" else "0") + good[1:]
    flipped_last = good[:-1] + ("1" if good[-1] == "0" else "0")
    for raw in (flipped_first, flipped_last, good[:-2], "01x1" * 8 + "01"):
        rig.card.write_raw(raw.encode() + b"\r\n")
    rig.card.write_raw(b"\x00\xff garbage \x13\n")
    rig.card.write_raw(b"1" * 10_000 + b"\n")
    rig.card.swipe(0x12345678, 34)
    got = rig.wait_entries(8)
    assert len(got) == 8 and got[-1]["tenant_id"] == "ok"
    wait_until(lambda: rig.state().get("bad_frames", {}).get("r1", {}).get("total", 0) >= 6, 10, what="bad frames")
    counts = rig.state()["bad_frames"]["r1"]
    assert counts["total"] == 6 and counts["parity"] == 2 and counts["overlong"] == 1, counts
    assert rig.state()["readers"]["r1"]["online"] is True
    seqs = [e["seq"] for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 8
    assert "bad frame" in rig.log()


def test_w26_and_w34_matching_and_the_ambiguous_24_bit_read(rig: Rig) -> None:
    rig.enrol("a", 0x12345678, valid_to=TODAY + 30 * DAY)
    rig.enrol("b", 0x01ABCDEF, valid_to=TODAY + 30 * DAY)
    rig.enrol("c", 0x02ABCDEF, valid_to=TODAY + 30 * DAY)  # same low 24 bits as b's card
    rig.start()
    rig.card.swipe(0x345678, 26)  # low 24 bits of a's card, one match
    rig.card.swipe(0x00345678, 34)  # a 34-bit read must equal all 32 bits: no match
    rig.card.swipe(0xABCDEF, 26)  # two enrolled cards share these 24 bits
    rig.card.swipe(0x01ABCDEF, 34)
    got = rig.wait_entries(4)
    assert [(e["card_bits"], e["tenant_id"], e["reason"]) for e in got] == [
        (26, "a", "granted"),
        (34, None, "unknown_card"),
        (26, None, "unknown_card"),
        (34, "b", "granted"),
    ]
    assert got[0]["card_number"] == 0x345678  # the number read, not the enrolled one
    assert "matches 2 enrolled cards" in rig.log()


def test_reader_unplug_and_return_without_restart(rig: Rig) -> None:
    rig.enrol("ok", 4242, valid_to=TODAY + 30 * DAY)
    rig.start()
    rig.card.swipe(4242)
    rig.wait_entries(1)
    rig.reader_link.close()  # the USB adapter is pulled
    wait_until(
        lambda: any(a["kind"] == "reader_offline" and a["state"] == "raised" for a in rig.alerts()),
        10,
        what="reader_offline raised",
    )
    wait_until(lambda: rig.state().get("readers", {}).get("r1", {}).get("online") is False, 10, what="state offline")
    rig.reader_link.reopen()  # and plugged back in
    wait_until(
        lambda: any(a["kind"] == "reader_offline" and a["state"] == "cleared" for a in rig.alerts()),
        15,
        what="reader_offline cleared",
    )
    rig.card.swipe(4242)
    got = rig.wait_entries(2)
    assert got[-1]["reason"] == "granted"


def test_broker_outage_keeps_doors_working_and_loses_nothing(rig: Rig, mosquitto: Mosquitto) -> None:
    rig.enrol("ok", 77, valid_to=TODAY + 30 * DAY)
    rig.start()
    rig.card.swipe(77)
    rig.wait_entries(1)
    wait_until(lambda: any(not w[2] for w in coil_writes(rig)), 5, what="the first pulse to end")
    mosquitto.stop()
    rig.board.clear_history()
    for i in range(20):
        rig.card.swipe(77)
        wait_until(lambda n=i: rig.log().count("entry main card 77/") >= 2 + n, 5, 0.01, f"decision {2 + i} logged")
    # The door opened although the broker is gone: it is never on the door's path.
    wait_until(lambda: any(w[2] for w in coil_writes(rig)), 5, what="relay pulse during outage")
    outbox = sqlite3.connect(rig.data_dir / "gateway.sqlite3")
    wait_until(lambda: outbox.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] >= 20, 5, 0.05,
               "the 20 entries kept in the outbox")  # fmt: skip
    outbox.close()
    mosquitto.start()
    wait_until(lambda: len({e["id"] for e in rig.entries()}) >= 21, 30, what="all 21 entries after the outage")
    db = sqlite3.connect(rig.data_dir / "gateway.sqlite3")
    ids = {row[0] for row in db.execute("SELECT id FROM entries")}
    assert ids == {e["id"] for e in rig.entries()}
    wait_until(lambda: db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0, 10, what="outbox drained")


def test_sigkill_mid_stream_delivers_every_entry_after_restart(rig: Rig) -> None:
    rig.enrol("ok", 5150, valid_to=TODAY + 30 * DAY)
    rig.start()
    stop = threading.Event()

    def swiper() -> None:
        while not stop.is_set():
            try:
                rig.card.swipe(5150)
            except OSError:
                pass
            time.sleep(0.005)  # pacing: a card every ~5 ms until the kill, not a wait for anything

    thread = threading.Thread(target=swiper, daemon=True)
    thread.start()
    wait_until(lambda: len(rig.entries()) >= 50, 20, what="50 entries before the kill")
    rig.kill()  # SIGKILL: no drain, no goodbye
    stop.set()
    thread.join(5)
    db = sqlite3.connect(rig.data_dir / "gateway.sqlite3")
    in_log = {row[0] for row in db.execute("SELECT id FROM entries")}
    waiting = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    db.close()
    rig.start()
    wait_until(lambda: in_log <= {e["id"] for e in rig.entries()}, 30, what="every logged entry delivered")
    seen: set[str] = set()
    new_seqs = []
    for e in rig.entries():
        if e["id"] not in seen:
            seen.add(e["id"])
            new_seqs.append(e["seq"])
    assert new_seqs == sorted(new_seqs), "seq went backwards for a new id"
    assert len(in_log) >= 50
    print(f"entries in log at kill: {len(in_log)}, still in outbox: {waiting}")


def test_sigterm_stops_cleanly_and_says_offline(rig: Rig) -> None:
    rig.start()
    wait_until(lambda: rig.sub.raw("/availability")[-1:] == [b"online"], 10, what="online")
    assert rig.stop() == 0
    wait_until(lambda: rig.sub.raw("/availability")[-1:] == [b"offline"], 10, what="offline")


def test_exit_button_door_forced_and_held_open(rig: Rig) -> None:
    rig.start()
    rig.board.set_input(1, True)  # exit button pressed
    got = rig.wait_entries(1)
    assert (got[0]["method"], got[0]["decision"]) == ("exit_button", "granted")
    rig.board.set_input(1, False)
    # Past the unlock window and its grace (gateway.doors.GRACE_S): that time passing is the point, the
    # door keeps no observable mark of it.
    time.sleep(rig.pulse_ms / 1000 + 2.5)
    rig.board.set_input(0, True)  # door opened with nobody let in
    wait_until(lambda: any(a["kind"] == "door_forced" for a in rig.alerts()), 5, what="door_forced")
    wait_until(
        lambda: any(a["kind"] == "door_held_open" and a["state"] == "raised" for a in rig.alerts()),
        6,
        what="door_held_open",
    )
    rig.board.set_input(0, False)
    wait_until(
        lambda: any(a["kind"] == "door_held_open" and a["state"] == "cleared" for a in rig.alerts()),
        5,
        what="door_held_open cleared",
    )
    forced = next(a for a in rig.alerts() if a["kind"] == "door_forced")
    assert (forced["severity"], forced["door"], forced["state"]) == ("critical", "main", "raised")


def test_platform_requests_remote_open_and_state(rig: Rig) -> None:
    key, public = new_key_pair()
    rig.config["sync"] = {"platform_public_key": public}

    def signed(**message: object) -> str:
        issued = datetime.now(UTC).isoformat()
        return json.dumps(sign({"issued_at": issued, "user": "ops-1", **message}, key))

    rig.start()
    # "online" is published once the request subscription is acknowledged.
    wait_until(lambda: rig.sub.raw("/availability")[-1:] == [b"online"], 10, what="online")
    base = "accessgw/gw-test"
    rig.sub.publish(f"{base}/request/door/open", signed(transaction="tx-1", door="main"))
    rig.sub.publish(f"{base}/request/door/open", signed(transaction="tx-2", door="attic"))
    rig.sub.publish(f"{base}/request/state", json.dumps({"transaction": "tx-3"}))  # `state` needs no signature
    rig.sub.publish(f"{base}/request/roster/unknown", signed(transaction="tx-4"))
    wait_until(
        lambda: len(rig.sub.payloads("/response/door/open")) >= 2 and rig.sub.payloads("/response/state"),
        10,
        what="responses",
    )
    ok, bad = rig.sub.payloads("/response/door/open")
    assert (ok["transaction"], ok["status"]) == ("tx-1", "ok")
    assert (bad["transaction"], bad["status"], bad["error"]) == ("tx-2", "error", "unknown_door")
    state = rig.sub.payloads("/response/state")[0]
    assert state["status"] == "ok" and state["state"]["io_modules"]["io1"]["online"] is True
    entry = rig.wait_entries(1)[0]
    assert (entry["method"], entry["decision"], entry["door"]) == ("remote", "granted", "main")
    wait_until(lambda: any(w[2] for w in coil_writes(rig)), 5, what="remote open pulses the relay")
    db = sqlite3.connect(rig.data_dir / "gateway.sqlite3")
    assert db.execute("SELECT actor, details FROM audit_log WHERE action = 'door.open'").fetchall() == [
        ("platform:ops-1", '{"door": "main", "transaction": "tx-1"}')
    ]
    wait_until(lambda: rig.sub.payloads("/response/roster/unknown"), 5, what="unknown command answered")
    assert rig.sub.payloads("/response/roster/unknown")[0]["error"] == "unknown_command"


def test_systemd_notify_ready_and_watchdog(rig: Rig, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    os.environ["NOTIFY_SOCKET"] = str(sock_path)
    os.environ["WATCHDOG_USEC"] = "400000"
    try:
        rig.start()
        seen: list[bytes] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (b"READY=1" in seen and seen.count(b"WATCHDOG=1") >= 2):
            seen.append(sock.recv(256))
        assert b"READY=1" in seen and seen.count(b"WATCHDOG=1") >= 2, seen
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
        sock.close()


def test_rdm6300_reader_end_to_end(tmp_path: Path, mosquitto: Mosquitto) -> None:
    rig = Rig(tmp_path, mosquitto, protocol="rdm6300")
    try:
        rig.enrol("em", 0x12345678, valid_to=TODAY + DAY)
        rig.start()
        good = rig.card.frame(0x12345678)
        rig.card.write_raw(good[:-3] + b"00" + good[-1:])  # wrong checksum
        rig.card.write_raw(b"\x02NOTHEX!!!!0000\x03")
        rig.card.swipe(0x12345678)
        got = rig.wait_entries(1)
        assert (got[0]["card_bits"], got[0]["tenant_id"], got[0]["reason"]) == (40, "em", "granted")
        wait_until(lambda: rig.state().get("bad_frames", {}).get("r1", {}).get("total", 0) >= 2, 10, what="counts")
        assert rig.state()["bad_frames"]["r1"]["checksum"] == 1
        assert len(rig.entries()) == 1
    finally:
        rig.close()
