"""The ingest behind a real mosquitto, on both back-ends: gateways publish through the real uplink
(sync.MqttLink), town instances consume the group's shared subscription with manual acks.

What mosquitto 2.0 does here (measured): a shared subscription hands messages round-robin to the
group's sessions, offline persistent ones included, and keeps what a member received but did not
acknowledge in that member's session; it gives them again when that client id connects again, not
to another member. So an instance is restarted under its own `instance` id, and nothing is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.town import TownConfig
from sync.mqtt_client import InboundMessage
from testing.peers import Mosquitto, wait_until
from tests.town.rigs import FakeGateway, TownInstance, count, stored_ids, with_broker
from town import ingest as ingest_module
from town.ingest import Ingest
from town.store import bulk, open_town_store
from town.store.models import Gateway, TownAlert, TownEntry


@pytest.fixture
def town(town_cfg: TownConfig) -> Iterator[sessionmaker[Session]]:
    engine, sessions = open_town_store(town_cfg)
    yield sessions
    engine.dispose()


@pytest.fixture
def running() -> Iterator[list]:
    """Whatever a test starts (gateways, town instances), stopped at its end even when it fails."""
    things: list = []
    yield things
    for thing in reversed(things):
        try:
            thing.stop()
        except Exception:
            pass


def _gateway(sessions: sessionmaker[Session], gateway_id: str) -> Gateway | None:
    with sessions() as s:
        return s.get(Gateway, gateway_id)


def _events(sessions: sessionmaker[Session]) -> int:
    return count(sessions, TownEntry) + count(sessions, TownAlert)


def test_events_of_two_gateways_are_stored_exactly_once_and_again_changes_nothing(
    town_cfg: TownConfig, town, mosquitto: Mosquitto, running: list
) -> None:
    t = TownInstance(with_broker(town_cfg, mosquitto.port), town).start()
    running.append(t)
    gws = [FakeGateway(mosquitto.port, g).start() for g in ("gw-a", "gw-b")]
    running.extend(gws)
    sent: dict[str, str] = {}
    for gw in gws:
        sent |= gw.publish_events(60)
    wait_until(lambda: t.ingest.counters.inserted == 120, 15, 0.02, "120 events stored")
    assert stored_ids(town) == {i: [g] for i, g in sent.items()}

    for gw in gws:  # the same events again (a gateway republishing after a lost PUBACK): no new row
        for suffix, payload in list(gw.sent):
            gw.publish(suffix, payload)
    wait_until(lambda: t.ingest.counters.duplicates == 120, 15, 0.02, "the 120 duplicates seen")
    assert stored_ids(town) == {i: [g] for i, g in sent.items()}
    assert t.ingest.counters.inserted == 120 and t.ingest.counters.malformed == 0
    for g in ("gw-a", "gw-b"):
        row = _gateway(town, g)
        assert (row.availability, row.last_seq, row.missing_seqs) == ("online", 60, 0)  # "online": the link's own

    gws[0].stop()  # a clean stop says offline
    wait_until(lambda: _gateway(town, "gw-a").availability == "offline", 10, 0.02, "gw-a offline")


def test_state_responses_and_gaps_arrive_over_the_broker(
    town_cfg: TownConfig, town, mosquitto: Mosquitto, running: list
) -> None:
    answers = []
    t = TownInstance(with_broker(town_cfg, mosquitto.port), town,
                     on_response=lambda s, gw, cmd, p: answers.append((gw, cmd, p["status"]))).start()  # fmt: skip
    running.append(t)
    gw = FakeGateway(mosquitto.port, "gw-a").start()
    running.append(gw)
    gw.publish("state", {"ts": "2026-11-26T08:00:00Z", "roster_version": 5, "outbox_depth": 12}, retain=True)
    for seq in (1, 2, 5, 6, 8):
        gw.seq = seq - 1
        gw.publish("events/entry", gw.next_entry())
    gw.publish("response/roster/patch", {"transaction": "t-9", "status": "ok", "version": 6})
    gw.publish("events/entry", b"{broken")
    wait_until(lambda: t.ingest.counters.malformed == 1 and answers, 10, 0.02, "all of it taken")
    wait_until(lambda: t.ingest.idle(), 5, 0.02, "ingest idle")
    row = _gateway(town, "gw-a")
    assert (row.roster_version, row.outbox_depth, row.last_seq, row.missing_seqs) == (6, 12, 8, 3)
    assert answers == [("gw-a", "roster/patch", "ok")]
    assert t.ingest.counters.acked == t.ingest.counters.received


def test_an_instance_stopped_before_acking_gets_every_event_after_its_restart(
    town_cfg: TownConfig, town, mosquitto: Mosquitto, running: list, monkeypatch
) -> None:
    cfg = with_broker(town_cfg, mosquitto.port)
    real = bulk.insert_new
    broken = threading.Event()
    broken.set()

    def failing(conn, table, rows, key="id"):
        if broken.is_set():
            raise OperationalError("INSERT", {}, Exception("database is away"))
        return real(conn, table, rows, key)

    monkeypatch.setattr(ingest_module.bulk, "insert_new", failing)
    first = TownInstance(cfg, town, retry_max_s=0.1).start()
    running.append(first)
    gws = [FakeGateway(mosquitto.port, g).start() for g in ("gw-a", "gw-b")]
    running.extend(gws)
    sent = gws[0].publish_events(40) | gws[1].publish_events(40)
    for gw in gws:
        gw.wait_acked()
    wait_until(lambda: first.ingest.counters.commit_failures >= 2, 10, 0.02, "failing commits")
    first.stop()  # mid-batch, nothing committed, nothing acknowledged
    assert first.ingest.counters.acked == 0 and _events(town) == 0

    broken.clear()
    second = TownInstance(cfg, town).start()  # the same instance id: its session, its unacked messages
    running.append(second)
    wait_until(lambda: _events(town) == 80, 15, 0.02, "all 80 events after the restart")
    assert stored_ids(town) == {i: [g] for i, g in sent.items()}


def test_two_instances_in_one_group_split_the_load_without_loss_or_doubles(
    town_cfg: TownConfig, town, mosquitto: Mosquitto, running: list
) -> None:
    a = TownInstance(with_broker(town_cfg, mosquitto.port, "town-a"), town).start()
    b = TownInstance(with_broker(town_cfg, mosquitto.port, "town-b"), town).start()
    running.extend([a, b])
    gws = [FakeGateway(mosquitto.port, f"gw-{n}").start() for n in range(3)]
    running.extend(gws)
    sent: dict[str, str] = {}
    for _ in range(4):  # interleaved, as a fleet publishes
        for gw in gws:
            sent |= gw.publish_events(50)
    wait_until(lambda: _events(town) == 600, 20, 0.02, "600 events")
    wait_until(lambda: a.ingest.idle() and b.ingest.idle(), 5, 0.02, "both idle")
    assert stored_ids(town) == {i: [g] for i, g in sent.items()}
    inserted = (a.ingest.counters.inserted, b.ingest.counters.inserted)
    assert min(inserted) > 0 and sum(inserted) == 600, inserted
    for gw in gws:  # the gap counts hold although each instance saw only part of each gateway's sequence
        row = _gateway(town, gw.gateway_id)
        assert (row.last_seq, row.missing_seqs) == (200, 0)


def test_a_member_that_leaves_keeps_its_share_until_it_returns(
    town_cfg: TownConfig, town, mosquitto: Mosquitto, running: list
) -> None:
    """mosquitto 2.0's shared subscriptions, as the module docstring says: no loss, no doubles, but a
    member's share waits for that member."""
    a = TownInstance(with_broker(town_cfg, mosquitto.port, "town-a"), town).start()
    b = TownInstance(with_broker(town_cfg, mosquitto.port, "town-b"), town).start()
    running.extend([a, b])
    gw = FakeGateway(mosquitto.port, "gw-a").start()
    running.append(gw)
    sent = gw.publish_events(50)
    wait_until(lambda: _events(town) == 50, 10, 0.02, "first 50")
    a.stop()
    sent |= gw.publish_events(50)
    gw.wait_acked()
    wait_until(lambda: b.ingest.counters.received >= 45, 10, 0.02, "b's share")
    assert _events(town) < 100  # a's share waits in a's session
    back = TownInstance(with_broker(town_cfg, mosquitto.port, "town-a"), town).start()
    running.append(back)
    wait_until(lambda: _events(town) == 100, 10, 0.02, "all 100 once a is back")
    assert stored_ids(town) == {i: [g] for i, g in sent.items()}


class SlowIngest(Ingest):
    """Stores at a known pace, so a test can act mid-stream."""

    def process(self, messages: list[InboundMessage]) -> bool:
        threading.Event().wait(0.01)
        return super().process(messages)


@pytest.mark.slow
def test_a_broker_restart_mid_stream_loses_nothing(
    town_cfg: TownConfig, town, mosquitto: Mosquitto, running: list
) -> None:
    cfg = with_broker(town_cfg, mosquitto.port)
    t = TownInstance(cfg, town, ingest=SlowIngest(town, batch_size=5)).start()
    running.append(t)
    gws = [FakeGateway(mosquitto.port, g).start() for g in ("gw-a", "gw-b")]
    running.extend(gws)
    sent = gws[0].publish_events(150) | gws[1].publish_events(150)
    for gw in gws:
        gw.wait_acked()
    wait_until(lambda: _events(town) >= 40, 10, 0.005, "some stored")
    assert _events(town) < 300, "not mid-stream: make the ingest slower"
    mosquitto.stop()  # persistence: the town's session and its queue are written at exit
    mosquitto.start()
    wait_until(lambda: t.consumer.subscribed and all(gw.link.connected for gw in gws), 15, 0.05, "reconnected")
    sent |= gws[0].publish_events(50) | gws[1].publish_events(50)
    wait_until(lambda: _events(town) == 400, 30, 0.02, "all 400 events")
    wait_until(lambda: t.ingest.idle(), 5, 0.02, "ingest idle")
    assert stored_ids(town) == {i: [g] for i, g in sent.items()}
    for gw in gws:
        row = _gateway(town, gw.gateway_id)
        assert (row.last_seq, row.missing_seqs) == (200, 0)
