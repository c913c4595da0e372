"""Delivery receipts: the town's signed word that it has committed a gateway's events.

Why: a broker's PUBACK says the broker has the message, not that the town stored it. A broker that
restarts (mosquitto 2.0.11 does not restore a persistent session's `$share` subscriptions from its
persistence file) or dies before its autosave drops what it acknowledged. With `sync.keep_until_receipt`
the gateway keeps each outbox row until a receipt names its `seq`, and sends again what gets none.

`{base}/{gateway_id}/receipt`, QoS 1, not retained, signed like a request (sync.signing):
    {"gateway_id": "gw-a", "seqs": [[first, last], ...], "issued_at": "2026-…Z", "sig": "…"}
The gateway id is signed so that a receipt for one building cannot be replayed at another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from nacl.signing import SigningKey, VerifyKey

from sync.signing import sign, verify

MAX_RECEIPT_BYTES = 64 * 1024
MAX_SEQS = 20_000  # seqs one receipt may name (its ranges expanded); a town sends at most a batch's worth
BIGINT = 2**63 - 1


class ReceiptError(ValueError):
    """A receipt that is not taken (unsigned, another gateway's, stale, malformed)."""


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """[3, 1, 2, 7] → [[1, 3], [7, 7]]: the gateway publishes in seq order, so receipts stay short."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def receipt_message(gateway_id: str, seqs: Iterable[int], key: SigningKey, now: datetime | None = None) -> str:
    """The signed JSON the town publishes on `…/{gateway_id}/receipt`."""
    issued = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return json.dumps(sign({"gateway_id": gateway_id, "seqs": seq_ranges(seqs), "issued_at": issued}, key))


def receipted_seqs(raw: bytes, gateway_id: str, key: VerifyKey, now: datetime, max_skew_s: float) -> list[int]:
    """The seqs a receipt confirms, once it is bounded, signed by the town, for us and fresh; else ReceiptError."""
    if len(raw) > MAX_RECEIPT_BYTES:
        raise ReceiptError(f"receipt of {len(raw)} bytes; at most {MAX_RECEIPT_BYTES}")
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ReceiptError("receipt is not JSON") from None
    if not isinstance(message, dict) or not verify(message, key):
        raise ReceiptError("receipt not signed by the platform's key")
    if message.get("gateway_id") != gateway_id:
        raise ReceiptError(f"receipt for gateway {str(message.get('gateway_id'))[:64]!r}")
    issued = message.get("issued_at")
    try:
        ts = datetime.fromisoformat(issued) if isinstance(issued, str) and len(issued) <= 40 else None
    except ValueError:
        ts = None
    if ts is None or ts.tzinfo is None or abs((now - ts).total_seconds()) > max_skew_s:
        raise ReceiptError(f"receipt's issued_at is not within {max_skew_s:.0f} s of our clock")
    return _expand(message.get("seqs"))


def _expand(ranges: object) -> list[int]:
    if not isinstance(ranges, list):
        raise ReceiptError("`seqs` must be a list of [first, last] pairs")
    seqs: list[int] = []
    for pair in ranges:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= BIGINT for v in pair)
            or pair[0] > pair[1]
        ):
            raise ReceiptError("`seqs` must be a list of [first, last] pairs of seqs")
        if len(seqs) + pair[1] - pair[0] + 1 > MAX_SEQS:
            raise ReceiptError(f"a receipt names at most {MAX_SEQS} seqs")
        seqs.extend(range(pair[0], pair[1] + 1))
    return seqs
