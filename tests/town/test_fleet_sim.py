"""The load test's simulated fleet (bench/fleet.py) on its own, with a real mosquitto and no town: every
entry written at 5 gateways reaches a platform-side subscriber exactly once, and a signed roster patch is
applied and answered by the gateway's own request handling."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.fleet import Fleet, FleetSpec, gateway_ids
from sync.roster_messages import compact, patch_message
from sync.signing import new_key_pair
from testing.peers import Mosquitto, Subscriber, wait_until

pytestmark = pytest.mark.slow  # 2 spawned processes importing the gateway's store, ~10 s


def test_five_gateways_deliver_every_entry_once_and_answer_a_signed_patch(mosquitto: Mosquitto, tmp_path: Path) -> None:
    key, public = new_key_pair()
    ids = gateway_ids(5, "sim")
    sub = Subscriber(mosquitto.port, "accessgw/+/#", client_id="fleet-test-platform")
    fleet = Fleet(FleetSpec(broker_port=mosquitto.port, root=tmp_path / "fleet", platform_key=public), ids, 2)
    try:
        fleet.start(timeout=120)
        assert fleet.prefill(20) == 100  # written while not connected: the outbox holds them
        assert fleet.depth() == 100
        assert fleet.connect(wait_s=20)["connected"] == 5
        fleet.peak(per_gateway=30, duration_s=2.0, start_in_s=0.2)
        peak = fleet.peak_wait(wait_s=60)
        assert peak["done"] == peak["due"] == 150 and peak["error_count"] == 0

        written = fleet.entry_ids()
        assert len(written) == len(set(written)) == 250
        wait_until(lambda: len(sub.payloads("/events/entry")) >= 250, 30, 0.05, "every entry at the subscriber")
        wait_until(lambda: fleet.depth() == 0, 10, 0.1, "empty outboxes (rows deleted on PUBACK)")
        entries = sub.payloads("/events/entry")
        assert Counter(e["id"] for e in entries) == Counter(written)  # each exactly once
        for gid in ids:  # in seq order, per gateway, seqs strictly increasing
            seqs = [e["seq"] for e in entries if e["gateway_id"] == gid]
            assert len(seqs) == 50 and seqs == sorted(seqs) and len(set(seqs)) == 50

        # Availability and state as the real gateway publishes them.
        online = {t.split("/")[1] for t, p, _ in sub.messages if t.endswith("/availability") and p == b"online"}
        assert online == set(ids)
        wait_until(lambda: {s["roster_version"] for s in sub.payloads("/state")} == {0}, 10, 0.05, "states")

        # A signed patch to one gateway: applied, answered with its version, and the state follows.
        patch = patch_message(key, 0, 1, [{"op": "upsert", "kind": "watch", "id": "W1", "name": "test",
                                           "note": None, "vectors": []}])  # fmt: skip
        sub.publish(f"accessgw/{ids[2]}/request/roster/patch", compact(patch))
        answer = wait_until(lambda: sub.payloads(f"{ids[2]}/response/roster/patch"), 10, 0.05, "the patch's answer")
        assert answer[0] == {"transaction": patch["transaction"], "status": "ok", "version": 1}
        wait_until(lambda: any(json.loads(p)["roster_version"] == 1 for t, p, _ in sub.messages
                               if t == f"accessgw/{ids[2]}/state"), 10, 0.05, "state with version 1")  # fmt: skip
        versions = fleet.versions()
        assert versions[ids[2]]["version"] == 1 and "1" in versions[ids[2]]["reached"]
        assert {v["version"] for g, v in versions.items() if g != ids[2]} == {0}

        # The same patch again (replayed transaction) changes nothing and is refused.
        sub.publish(f"accessgw/{ids[2]}/request/roster/patch", compact(patch))
        again = wait_until(lambda: sub.payloads(f"{ids[2]}/response/roster/patch")[1:], 10, 0.05, "second answer")
        assert again[0]["status"] == "error" and again[0]["error"] == "replayed"

        # Stopped cleanly: every gateway says `offline` on its way out.
        fleet.stop()

        def offline() -> set[str]:
            return {t.split("/")[1] for t, p, _ in sub.messages if t.endswith("/availability") and p == b"offline"}

        wait_until(lambda: offline() == set(ids), 10, 0.05, "offline from every gateway")
    finally:
        fleet.stop()  # again on failure: nothing left running
        sub.close()
