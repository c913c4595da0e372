"""Ed25519 signatures and the request guard (DESIGN §6.1), without a broker."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from nacl.signing import SigningKey

from sync.commands import CommandRouter, RequestGuard
from sync.signing import canonical, new_key_pair, public_key, sign, verify

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Memory:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def first_time(self, transaction: str, now: datetime) -> bool:
        new = transaction not in self.seen
        self.seen.add(transaction)
        return new


def test_canonical_form_is_sorted_compact_utf8_without_sig() -> None:
    message = {"b": 1, "a": "王芳", "sig": "x"}
    assert canonical(message) == '{"a":"王芳","b":1}'.encode()


def test_sign_and_verify_round_trip_and_any_change_breaks_it() -> None:
    key, public = new_key_pair()
    signed = sign({"transaction": "t-1", "name": "王芳", "ops": [{"op": "upsert"}]}, key)
    assert verify(signed, public_key(public))
    assert not verify({**signed, "name": "王芬"}, public_key(public))
    assert not verify({**signed, "sig": signed["sig"][:-4] + "AAA="}, public_key(public))
    assert not verify({k: v for k, v in signed.items() if k != "sig"}, public_key(public))
    assert not verify(signed, public_key(new_key_pair()[1]))


def test_the_signature_is_what_design_specifies() -> None:
    key = SigningKey(bytes(range(32)))
    message = {"transaction": "t-17", "issued_at": "2026-12-01T08:00:00Z", "door": "main", "user": "u"}
    expected = key.sign(json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    assert sign(message, key)["sig"] == base64.b64encode(expected.signature).decode()


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_bad_public_key_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="platform_public_key"):
        public_key(bad)


def run(router: CommandRouter, command: str, message: dict | bytes) -> dict:
    raw = message if isinstance(message, bytes) else json.dumps(message).encode()
    return asyncio.run(router.dispatch(command, raw))  # type: ignore[return-value]


def test_refusals_come_in_designs_order_and_reach_no_handler() -> None:
    key, public = new_key_pair()
    other, _ = new_key_pair()
    calls: list[dict] = []

    async def handler(request: dict) -> dict:
        calls.append(request)
        return {}

    guard = RequestGuard(public_key(public), Memory(), 300, clock=lambda: NOW)
    router = CommandRouter(lambda c, p: None, guard)
    router.register("door/open", handler)
    router.register("state", handler)
    fresh = NOW.isoformat()
    old = (NOW - timedelta(seconds=301)).isoformat()
    # An unsigned stale replay with a bad transaction is, first of all, unsigned.
    assert run(router, "door/open", {"transaction": ["x"], "issued_at": old})["error"] == "bad_signature"
    assert run(router, "door/open", sign({"transaction": "a", "issued_at": fresh}, other))["error"] == "bad_signature"
    assert run(router, "door/open", sign({"transaction": "a", "issued_at": old}, key))["error"] == "stale"
    assert run(router, "door/open", sign({"transaction": "a", "issued_at": "2026-12-01T08:00:00"}, key))[
        "error"] == "stale"  # fmt: skip
    assert run(router, "door/open", sign({"transaction": "a", "issued_at": fresh}, key))["status"] == "ok"
    assert run(router, "door/open", sign({"transaction": "a", "issued_at": fresh}, key))["error"] == "replayed"
    assert run(router, "door/open", sign({"transaction": [1], "issued_at": fresh}, key))["error"] == "malformed"
    assert run(router, "roster/x", sign({"transaction": "b", "issued_at": fresh}, key))["error"] == "unknown_command"
    assert run(router, "door/open", b"not json")["error"] == "bad_signature"
    assert run(router, "state", {"transaction": "s"})["status"] == "ok"  # needs no signature
    assert len(calls) == 2


def test_without_a_key_only_state_is_answered() -> None:
    router = CommandRouter(lambda c, p: None, RequestGuard(None, Memory()))

    async def handler(request: dict) -> dict:
        return {}

    router.register("door/open", handler)
    router.register("state", handler)
    key, _ = new_key_pair()
    assert run(router, "door/open", sign({"transaction": "a", "issued_at": NOW.isoformat()}, key))[
        "error"] == "bad_signature"  # fmt: skip
    assert run(router, "state", {})["status"] == "ok"
