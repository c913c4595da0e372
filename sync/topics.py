"""Topic names of the MQTT contract (DESIGN §6)."""

from __future__ import annotations

from dataclasses import dataclass

# Outbox topics, relative to the gateway's root (the store queues events under these names).
ENTRY = "events/entry"
ALERT = "events/alert"
ROSTER = "events/roster"
ROSTER_REQUEST = "events/roster_request"


@dataclass(frozen=True, slots=True)
class Topics:
    base_topic: str
    gateway_id: str

    @property
    def root(self) -> str:
        return f"{self.base_topic}/{self.gateway_id}"

    def under(self, suffix: str) -> str:
        return f"{self.root}/{suffix}"

    @property
    def availability(self) -> str:
        return self.under("availability")

    @property
    def state(self) -> str:
        return self.under("state")

    @property
    def receipt(self) -> str:
        """Where the town confirms what it stored (sync.receipts)."""
        return self.under("receipt")

    @property
    def requests(self) -> str:
        return self.under("request/#")

    def command_of(self, topic: str) -> str | None:
        """`…/request/door/open` → `door/open`; None for any other topic."""
        prefix = self.under("request/")
        return topic[len(prefix) :] if topic.startswith(prefix) else None

    def response(self, command: str) -> str:
        return self.under(f"response/{command}")
