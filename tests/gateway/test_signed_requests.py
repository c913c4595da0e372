"""Requests from the platform are signed, fresh and new, or refused with nothing changed (DESIGN §6.1).

Against the real daemon, a real mosquitto, the pty reader and pymodbus's relay board."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from sync.signing import new_key_pair, sign
from testing.peers import Mosquitto, wait_until
from tests.gateway.rig import GATEWAY_ID, Rig

pytestmark = pytest.mark.slow
BASE = f"accessgw/{GATEWAY_ID}"


@pytest.fixture
def rig(signed_rig: Rig) -> Rig:
    return signed_rig


def now_text(shift_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=shift_s)).isoformat().replace("+00:00", "Z")


def open_request(transaction: str, key: SigningKey | None, **extra: Any) -> str:
    message = {"transaction": transaction, "issued_at": now_text(), "door": "main", "user": "duty-officer-3"}
    message |= extra
    return json.dumps(sign(message, key) if key is not None else message)


def answers(rig: Rig, n: int) -> list[dict[str, Any]]:
    wait_until(lambda: len(rig.sub.payloads_under("/response/")) >= n, 10, what=f"{n} responses")
    return rig.sub.payloads_under("/response/")


def coil_on_writes(rig: Rig) -> int:
    return sum(1 for w in rig.board.write_history() if w[1] == 0 and w[2])


def online(rig: Rig) -> None:
    wait_until(lambda: rig.sub.raw("/availability")[-1:] == [b"online"], 10, what="online")


def test_each_refusal_changes_nothing_and_a_signed_open_opens(rig: Rig, keys: tuple[SigningKey, str]) -> None:
    key, _ = keys
    rig.start()
    online(rig)
    stranger_key, _ = new_key_pair()
    tampered = json.loads(open_request("t-tampered", key))
    tampered["door"] = "back"
    refused = [
        ("door/open", open_request("t-1", None)),  # unsigned
        ("door/open", open_request("t-2", stranger_key)),  # another key
        ("door/open", json.dumps(tampered)),  # signed, then changed
        ("door/open", open_request("t-3", key, issued_at=now_text(-3600))),  # an hour old
        ("door/open", json.dumps(sign({"transaction": ["x"], "issued_at": now_text(), "door": "main",
                                       "user": "u"}, key))),  # fmt: skip
        ("door/open", open_request("t-4", key, user="")),  # who asked is required
        ("roster/unknown", open_request("t-5", key)),
        ("door/open", "not json"),
    ]
    for command, payload in refused:
        rig.sub.publish(f"{BASE}/request/{command}", payload)
    answers(rig, len(refused))
    # In order within a command's lane (the roster's requests have their own, so lanes may interleave).
    opens = [a.get("error") for a in rig.sub.payloads("/response/door/open")]
    assert opens == ["bad_signature"] * 3 + ["stale", "malformed", "malformed", "bad_signature"]
    assert [a.get("error") for a in rig.sub.payloads("/response/roster/unknown")] == ["unknown_command"]
    assert coil_on_writes(rig) == 0 and rig.entries() == []

    rig.sub.publish(f"{BASE}/request/door/open", open_request("t-ok", key))
    ok = answers(rig, len(refused) + 1)[-1]
    assert (ok["transaction"], ok["status"], ok["door"]) == ("t-ok", "ok", "main")
    entry = rig.wait_entries(1)[0]
    assert (entry["method"], entry["decision"]) == ("remote", "granted")
    wait_until(lambda: coil_on_writes(rig) == 1, 5, what="the relay pulses")
    db = sqlite3.connect(rig.data_dir / "gateway.sqlite3")
    assert db.execute("SELECT actor FROM audit_log WHERE action = 'door.open'").fetchall() == [
        ("platform:duty-officer-3",)
    ]
    assert json.loads(db.execute("SELECT details FROM entries").fetchone()[0]) == {"user": "duty-officer-3"}

    # The same transaction again, even re-signed, and even after a restart: replayed.
    rig.stop()
    rig.start()
    online(rig)
    rig.sub.publish(f"{BASE}/request/door/open", open_request("t-ok", key))
    assert answers(rig, len(refused) + 2)[-1]["error"] == "replayed"
    assert coil_on_writes(rig) == 1


def test_a_retained_open_is_never_acted_on(rig: Rig, keys: tuple[SigningKey, str]) -> None:
    """A retained request reaches a gateway again at every (re)connection: it must never open a door."""
    key, _ = keys
    rig.sub.publish(f"{BASE}/request/door/open", open_request("t-retained", key), retain=True)  # gateway not up
    rig.start()
    online(rig)
    wait_until(lambda: "retained request on" in rig.log(), 10, what="the retained request logged and ignored")
    rig.stop()
    rig.start()
    online(rig)
    wait_until(lambda: rig.log().count("retained request on") >= 2, 10, what="ignored again after the restart")
    assert coil_on_writes(rig) == 0 and rig.entries() == [] and rig.sub.payloads("/response/door/open") == []
    rig.sub.publish(f"{BASE}/request/door/open", "", retain=True)  # clear it from the broker


def test_without_a_platform_key_only_state_is_accepted(tmp_path: Path, mosquitto: Mosquitto,
                                                       keys: tuple[SigningKey, str]) -> None:  # fmt: skip
    rig = Rig(tmp_path, mosquitto, pulse_ms=200)
    try:
        rig.start()
        online(rig)
        rig.sub.publish(f"{BASE}/request/door/open", open_request("t-1", keys[0]))
        rig.sub.publish(f"{BASE}/request/state", json.dumps({"transaction": "s-1"}))
        wait_until(lambda: rig.sub.payloads("/response/door/open") and rig.sub.payloads("/response/state"), 10,
                   what="both answered")  # fmt: skip
        assert rig.sub.payloads("/response/door/open")[0]["error"] == "bad_signature"
        assert rig.sub.payloads("/response/state")[0]["status"] == "ok"
        assert coil_on_writes(rig) == 0
    finally:
        rig.close()
