"""Receipts to the buildings (sync.receipts): after each commit the ingest names the seqs it stored
per gateway; every `interval_s` each gateway with news gets one signed receipt naming them.

Coalesced so that a peak costs the broker at most one receipt per gateway per interval, not one per
batch. A receipt that cannot be published now (the link is down) is kept for the next round; one lost
after publishing (a SIGKILL, a broker restart) only makes the gateway send those events again, and the
ingest stores them once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from nacl.signing import SigningKey

from sync.receipts import MAX_SEQS, receipt_message
from sync.topics import Topics

log = logging.getLogger(__name__)

MAX_HELD_PER_GATEWAY = 100_000  # seqs kept for a gateway while the link is down; beyond, it will send them again


class ReceiptSender:
    def __init__(
        self,
        key: SigningKey,
        publish: Callable[[str, str], int | None],
        base_topic: str,
        interval_s: float = 1.0,
    ) -> None:
        self._key = key
        self._publish = publish  # (topic, payload) → mid, or None when not accepted
        self._base = base_topic
        self._interval = interval_s
        self._held: dict[str, set[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def add(self, stored: dict[str, list[int]]) -> None:
        """From the ingest, after a commit: gateway id → seqs now in the store (new or already there)."""
        with self._lock:
            for gateway_id, seqs in stored.items():
                held = self._held.setdefault(gateway_id, set())
                if len(held) < MAX_HELD_PER_GATEWAY:
                    held.update(seqs)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="town-receipts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.flush()  # what the last batches stored, while the link is still up

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # a bug here must not end the receipts
                log.exception("receipts not sent; tried again next round")

    def flush(self) -> int:
        """Publish one receipt per gateway with news; returns how many went out."""
        with self._lock:
            held, self._held = self._held, {}
        sent = 0
        for gateway_id, seqs in held.items():
            ordered = sorted(seqs)
            for start in range(0, len(ordered), MAX_SEQS):
                part = ordered[start : start + MAX_SEQS]
                topic = Topics(self._base, gateway_id).receipt
                if self._publish(topic, receipt_message(gateway_id, part, self._key)) is None:
                    self.add({gateway_id: ordered[start:]})  # the link is down: next round
                    break
                sent += 1
        self.sent += sent
        return sent
