"""What a request may make the gateway parse, echo and publish (sync.commands bounds)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from sync.commands import MAX_PAYLOAD, MAX_TRANSACTION, MAX_WAITING, CommandRouter


class Answers:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.router = CommandRouter(lambda cmd, payload: self.sent.append((cmd, payload)))
        self.handled: list[dict[str, Any]] = []

        async def state(request: dict[str, Any]) -> dict[str, Any]:
            self.handled.append(request)
            return {"state": {}}

        self.router.register("state", state)

    def dispatch(self, command: str, raw: bytes) -> dict[str, Any] | None:
        return asyncio.run(self.router.dispatch(command, raw))


def test_a_huge_transaction_is_refused_and_never_echoed() -> None:
    a = Answers()
    raw = json.dumps({"transaction": "t" * 20_000_000}).encode()  # 20 MB
    response = a.dispatch("state", raw)
    assert response is not None and (response["status"], response["error"]) == ("error", "malformed")
    assert response["transaction"] is None
    [(command, payload)] = a.sent
    assert command == "state" and len(payload) < 1000 and a.handled == []


@pytest.mark.parametrize("transaction", ["t" * (MAX_TRANSACTION + 1), 10**MAX_TRANSACTION, True, 1.5, ["t"], {}])
def test_a_transaction_must_be_a_short_string_or_integer(transaction: object) -> None:
    a = Answers()
    response = a.dispatch("state", json.dumps({"transaction": transaction}).encode())
    assert response is not None and response["error"] == "malformed" and response["transaction"] is None
    assert a.handled == []


@pytest.mark.parametrize("transaction", ["t" * MAX_TRANSACTION, 10**MAX_TRANSACTION - 1, -17, 0, None])
def test_short_transactions_are_echoed(transaction: object) -> None:
    a = Answers()
    response = a.dispatch("state", json.dumps({"transaction": transaction}).encode())
    assert response is not None and response["status"] == "ok" and response["transaction"] == transaction
    assert json.loads(a.sent[0][1])["transaction"] == transaction


def test_an_oversized_payload_is_refused_before_it_is_parsed() -> None:
    a = Answers()
    padding = "x" * MAX_PAYLOAD
    response = a.dispatch("state", json.dumps({"transaction": "t1", "pad": padding}).encode())
    assert response is not None and response["error"] == "malformed"
    assert response["transaction"] is None  # not parsed, so not known
    assert a.handled == [] and len(a.sent[0][1]) < 1000
    assert a.dispatch("state", b"not json")["error"] == "malformed"  # type: ignore[index]


@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a":', "}")])
def test_json_nested_too_deep_is_malformed_not_an_internal_error(opener: str, closer: str) -> None:
    # json.loads raises RecursionError (not ValueError) past ~1,000 levels: found by bench/fault_mqtt.py.
    a = Answers()
    response = a.dispatch("state", (opener * 100_000 + "1" + closer * 100_000).encode())
    assert response is not None and (response["status"], response["error"]) == ("error", "malformed")
    assert a.handled == [] and len(a.sent[0][1]) < 1000


@pytest.mark.parametrize(
    "command", ["#", "+", "state/#", "a/+/b", "State", "x" * 65, "state\x00", "../state", "st ate", "", "é"]
)
def test_an_odd_command_name_is_logged_and_not_answered(command: str, caplog: pytest.LogCaptureFixture) -> None:
    a = Answers()
    assert a.dispatch(command, b'{"transaction": "t1"}') is None
    assert a.sent == [] and a.handled == []
    assert "odd topic" in caplog.text


def test_ordinary_command_names_are_answered() -> None:
    a = Answers()
    for command in ("state", "roster/patch", "door/open", "roster_snapshot-2"):
        a.dispatch(command, b'{"transaction": "t1"}')
    assert [c for c, _ in a.sent] == ["state", "roster/patch", "door/open", "roster_snapshot-2"]
    assert [json.loads(p)["error"] for _, p in a.sent[1:]] == ["unknown_command"] * 3


def test_the_mqtt_thread_waits_when_max_waiting_requests_are_unanswered() -> None:
    """A flood is held by the broker (the MQTT thread waits), never by the gateway's memory."""
    loop = asyncio.new_event_loop()
    release = asyncio.Event()
    handled: list[int] = []
    router = CommandRouter(lambda cmd, payload: None)

    async def slow(request: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        handled.append(1)
        return {}

    router.register("state", slow)
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        assert all(router.submit("state", b'{"transaction": 1}', loop) for _ in range(MAX_WAITING))
        started = time.monotonic()
        assert not router.submit("state", b'{"transaction": 2}', loop, wait_s=0.3)  # no room: dropped, logged
        assert time.monotonic() - started >= 0.3
        loop.call_soon_threadsafe(release.set)
        assert router.submit("state", b'{"transaction": 3}', loop, wait_s=5)  # room again once answered
        deadline = time.monotonic() + 5
        while len(handled) < MAX_WAITING + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(handled) == MAX_WAITING + 1
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()
