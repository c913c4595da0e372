"""Health: device status, bad-frame counts and the `…/state` payload (pure, no I/O)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

from gateway import __version__
from gateway.health import DeviceHealth, Health


def test_the_first_report_of_a_device_is_a_change_either_way() -> None:
    h = Health()
    assert h.set_online(h.readers, "r1", True, None) is True
    assert h.set_online(h.readers, "r2", False, "cannot open /dev/ttyUSB1") is True
    assert (h.readers["r1"].online, h.readers["r1"].error) == (True, None)
    assert (h.readers["r2"].online, h.readers["r2"].error) == (False, "cannot open /dev/ttyUSB1")


def test_only_a_new_status_is_a_change() -> None:
    h = Health()
    h.set_online(h.io_modules, "io1", True, None)
    first = h.io_modules["io1"]
    assert h.set_online(h.io_modules, "io1", True, None) is False
    assert h.io_modules["io1"] is first  # same record, same `since`
    assert h.set_online(h.io_modules, "io1", False, "no answer") is True
    assert h.io_modules["io1"] is not first and h.io_modules["io1"].since >= first.since
    assert h.set_online(h.io_modules, "io1", True, None) is True
    assert h.io_modules["io1"].error is None  # back online: the error goes


def test_a_repeated_status_updates_the_error_but_keeps_since() -> None:
    h = Health()
    h.set_online(h.cameras, "c1", False, "connection refused")
    record = h.cameras["c1"]
    assert h.set_online(h.cameras, "c1", False, "read timeout") is False
    assert h.cameras["c1"] is record and record.error == "read timeout"
    assert h.set_online(h.cameras, "c1", False, None) is False
    assert record.error == "read timeout"  # no new error: the last one stands


def test_last_error_names_the_device_and_survives_recovery() -> None:
    h = Health()
    assert h.last_error is None
    h.set_online(h.readers, "r1", True, None)
    assert h.last_error is None
    h.set_online(h.readers, "r1", False, "unplugged")
    assert h.last_error == "r1: unplugged"
    h.set_online(h.io_modules, "io1", False, "no answer from unit 1")
    assert h.last_error == "io1: no answer from unit 1"
    h.set_online(h.io_modules, "io1", True, None)
    assert h.last_error == "io1: no answer from unit 1"


def test_tables_are_independent() -> None:
    h = Health()
    h.set_online(h.readers, "x", True, None)
    assert h.set_online(h.cameras, "x", True, None) is True
    assert set(h.readers) == set(h.cameras) == {"x"} and not h.io_modules


def test_bad_frames_are_counted_per_reader_and_kind() -> None:
    h = Health()
    for reader, kind in [("r1", "parity"), ("r1", "parity"), ("r1", "overlong"), ("r2", "checksum")]:
        h.count_bad_frame(reader, kind)
    assert h.bad_frames == {"r1": Counter(parity=2, overlong=1), "r2": Counter(checksum=1)}
    payload = h.state_payload(None, 0)["bad_frames"]
    assert payload == {"r1": {"parity": 2, "overlong": 1, "total": 3}, "r2": {"checksum": 1, "total": 1}}


def test_state_payload_of_a_fresh_gateway() -> None:
    payload = Health().state_payload(None, 0)
    assert set(payload) == {"ts", "version", "roster_version", "outbox_depth", "swipes", "bad_frames", "readers",
                            "io_modules", "cameras", "last_error"}  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", payload["ts"]), payload["ts"]
    datetime.fromisoformat(payload["ts"].replace("Z", "+00:00"))
    assert payload["version"] == __version__
    assert (payload["roster_version"], payload["outbox_depth"], payload["swipes"]) == (None, 0, 0)
    assert payload["bad_frames"] == payload["readers"] == payload["io_modules"] == payload["cameras"] == {}
    assert payload["last_error"] is None


def test_state_payload_lists_devices_sorted_with_status_and_error() -> None:
    h = Health()
    h.set_online(h.readers, "r2", True, None)
    h.set_online(h.readers, "r1", False, "unplugged")
    h.set_online(h.cameras, "c1", True, None)
    h.swipes = 7
    payload = h.state_payload("42", 13)
    assert list(payload["readers"]) == ["r1", "r2"]
    assert payload["readers"] == {"r1": {"online": False, "error": "unplugged"}, "r2": {"online": True, "error": None}}
    assert payload["cameras"] == {"c1": {"online": True, "error": None}}
    assert (payload["roster_version"], payload["outbox_depth"], payload["swipes"]) == ("42", 13, 7)
    assert payload["last_error"] == "r1: unplugged"


def test_a_device_health_defaults_to_offline_now() -> None:
    d = DeviceHealth()
    assert (d.online, d.error) == (False, None)
    assert d.since.tzinfo is not None
