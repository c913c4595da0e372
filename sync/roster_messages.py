"""Signed roster requests as the town platform sends them (DESIGN §6.1): one home for the builders that the
town's pusher, the benchmarks and tests use.

`patch_message` → one signed `request/roster/patch`; `snapshot_messages` → a signed `request/roster/snapshot`
in chunks of at most `max_bytes` bytes each (the gateway takes up to 256 KB; DESIGN §6.1 says ≤ 200 KB).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from nacl.signing import SigningKey
from ulid import ULID

from sync.signing import sign

MAX_MESSAGE = 200_000  # DESIGN §6.1: a snapshot chunk is at most 200 KB
ENVELOPE = 400  # transaction, issued_at, version, snapshot_id, chunk, chunks, sig


def now_text(now: datetime | None = None) -> str:
    """`issued_at`: RFC 3339 UTC with a Z, e.g. 2026-12-01T08:00:00.123456Z."""
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_transaction(prefix: str = "t") -> str:
    """A transaction id never used before (the gateway refuses one seen in the last 24 h as `replayed`)."""
    return f"{prefix}{ULID()}"


def compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def patch_message(key: SigningKey, from_version: int, to_version: int, ops: list[dict[str, Any]], *,
                  transaction: str | None = None, issued_at: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A signed `roster/patch` (a dict: `compact(...)` it to publish)."""
    return sign({"transaction": transaction or new_transaction("p"), "issued_at": issued_at or now_text(),
                 "from_version": from_version, "to_version": to_version, "ops": ops}, key)  # fmt: skip


def chunk_ops(ops: Iterable[dict[str, Any]], max_bytes: int = MAX_MESSAGE) -> list[list[dict[str, Any]]]:
    """`ops` packed in order into lists whose message stays within `max_bytes` (envelope included)."""
    chunks: list[list[dict[str, Any]]] = [[]]
    size = ENVELOPE
    for op in ops:
        n = len(compact(op).encode()) + 1
        if size + n > max_bytes and chunks[-1]:
            chunks.append([])
            size = ENVELOPE
        chunks[-1].append(op)
        size += n
    return chunks


def snapshot_messages(key: SigningKey, version: int, ops: Iterable[dict[str, Any]], *,
                      snapshot_id: str | None = None, max_bytes: int = MAX_MESSAGE) -> list[bytes]:  # fmt: skip
    """A signed `roster/snapshot` (upserts only), ready to publish: chunks of at most `max_bytes` bytes.

    `snapshot_id` defaults to `snap-{version}` (benchmarks); the town gives each snapshot a new one, since a
    gateway answers a chunk of a snapshot id it applied lately from memory, and transactions are
    `{snapshot_id}-{chunk}`."""
    chunks = chunk_ops(ops, max_bytes)
    sid = snapshot_id or f"snap-{version}"
    now = now_text()
    return [compact(sign({"transaction": f"{sid}-{i}", "issued_at": now, "version": version, "snapshot_id": sid,
                          "chunk": i, "chunks": len(chunks), "ops": c}, key)).encode()
            for i, c in enumerate(chunks)]  # fmt: skip
