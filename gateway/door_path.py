"""The door's path (DESIGN §2): decide → commit the entry with its outbox row → unlock → report.

Card swipes, faces, exit buttons and remote opens all end here. It runs on
the gateway's loop; the broker is never on it, and neither is anything slow
(a face's snapshot is written after the pulse, by the caller).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from config.models import DoorConfig, ReaderConfig
from drivers.events import CardPresented
from gateway import metrics
from gateway.access import CardHolder, Decision, Reason, decide_card
from gateway.door_modes import CardStep, card_step
from gateway.doors import DoorState
from gateway.health import Health
from gateway.journal_writer import JournalWriter, Transaction
from gateway.passback import Checked, Direction, Mode, PassbackRule, check_passage, decide_exit, period_start
from gateway.store.journal import AlertDraft, EntryDraft
from gateway.store.presence import presence_of, record_passage
from gateway.store.roster import holders_for_read

if TYPE_CHECKING:
    from drivers.devices import Lock, Reader

log = logging.getLogger("accessgw")

UNLOCK_SEND_WAIT_S = 0.003

AwaitFace = Callable[[DoorConfig, CardPresented, Sequence[CardHolder]], None]


def card_draft(
    door: DoorConfig,
    event: CardPresented,
    decision: Decision,
    method: str,
    matches: int = 1,
    direction: str | None = None,
) -> EntryDraft:
    return EntryDraft(
        ts=event.ts,
        door=door.id,
        method=method,
        decision="granted" if decision.granted else "denied",
        reason=decision.reason.value,
        reader=event.reader,
        card_number=event.card_number,
        card_bits=event.card_bits,
        tenant_id=decision.tenant_id,
        details={"ambiguous": True, "matches": matches} if decision.ambiguous else None,
        direction=direction,
    )


class DoorPath:
    def __init__(
        self,
        engine: Engine,
        gateway_id: str,
        zone: ZoneInfo,
        doors: dict[str, DoorState],
        locks: dict[str, Lock],
        readers: Sequence[ReaderConfig],
        health: Health,
        notify_uplink: Callable[[], None],
        journal: JournalWriter | None = None,
    ) -> None:
        self.engine, self.gateway_id, self.zone = engine, gateway_id, zone
        # Entries and alerts are written through it: on a full disk it keeps them, and the door still opens.
        self.journal = journal or JournalWriter(engine, gateway_id, notify_uplink=notify_uplink)
        self.doors, self.locks, self.health, self.notify_uplink = doors, locks, health, notify_uplink
        self.reader_cfg = {r.id: r for r in readers}
        self.door_by_reader = {r: d for d in doors.values() for r in d.cfg.reader_directions()}
        self.direction_of = {r: way for d in doors.values() for r, way in d.cfg.reader_directions().items()}
        self.passback = {d.cfg.id: PassbackRule(Mode(d.cfg.anti_passback.mode), d.cfg.anti_passback.reset_at)
                         for d in doors.values() if d.cfg.anti_passback.mode != "off"}  # fmt: skip
        self.await_face: AwaitFace | None = None  # set when cameras exist (gateway.vision)
        self.on_entry: Callable[[EntryDraft, str], None] | None = None  # for simulators and tests
        self.on_denied: Callable[[EntryDraft], None] | None = None  # repeated-denials watch (gateway.door_watch)
        self.reader_devices: dict[str, Reader] = {}  # set by the gateway: LED/buzzer feedback at the reader
        self._last_read: dict[str, tuple[int, float]] = {}

    # --- cards -----------------------------------------------------------------
    def _repeated(self, event: CardPresented) -> bool:
        cfg = self.reader_cfg.get(event.reader)
        window = (cfg.repeat_suppress_ms if cfg else 0) / 1000.0
        last = self._last_read.get(event.reader)
        self._last_read[event.reader] = (event.card_number, event.mono)
        return last is not None and last[0] == event.card_number and event.mono - last[1] < window

    def on_card(self, event: CardPresented) -> None:
        picked = time.monotonic()  # the loop has the event: the time before this is queueing
        self.health.swipes += 1
        metrics.SWIPES.labels(event.reader).inc()
        door = self.door_by_reader.get(event.reader)
        if door is None:
            log.warning("card %s on reader %s, which no door uses", event.card_number, event.reader)
            return
        if self._repeated(event):
            return
        direction = self.direction_of.get(event.reader)
        exiting = direction == Direction.OUT  # an exit reader lets out by card alone, whatever the mode
        if not exiting and card_step(door.cfg.mode, self.await_face is not None) is CardStep.AWAIT_FACE:
            assert self.await_face is not None
            with self.engine.connect() as db:
                holders = holders_for_read(db, event.card_number, event.card_bits)
            self.await_face(door.cfg, event, holders)
            return
        with self.journal.transaction() as w:
            db = w.db
            holders = holders_for_read(db, event.card_number, event.card_bits)
            local = event.ts.astimezone(self.zone)
            decision = decide_exit(holders) if exiting else decide_card(holders, door.policy, local)
            draft = card_draft(door.cfg, event, decision, "card", len(holders), direction)
            draft, passage = self._passback(db, door.cfg, draft, decision)
            entry = w.entry(draft)
            self._passed(w, door.cfg, draft, passage, entry.id)
        self._after(draft, door.cfg, draft.decision == "granted", entry.id, event.mono, (picked, time.monotonic()))

    # --- any entry -------------------------------------------------------------
    def record(
        self,
        draft: EntryDraft,
        door: DoorConfig,
        granted: bool,
        *,
        entry_id: str | None = None,
        since_mono: float | None = None,
    ) -> str:
        """Commit the entry with its outbox row, then pulse the lock if granted; returns the entry id.

        A face (or card and face) at a door with entry and exit readers is an entry: anti-passback
        may refuse it here (the camera watches the outside)."""
        with self.journal.transaction() as w:
            db = w.db
            if door.readers is not None and draft.method in ("face", "card_and_face") and draft.direction is None:
                draft = replace(draft, direction=Direction.IN.value)
            draft, passage = self._passback(db, door, replace(draft, decision="granted" if granted else "denied"))
            entry = w.entry(draft, entry_id)
            self._passed(w, door, draft, passage, entry.id)
        self._after(draft, door, draft.decision == "granted", entry.id, since_mono)
        return entry.id

    # --- anti-passback (gateway.passback), in the entry's transaction ---------
    def _passback(
        self, db: Connection, door: DoorConfig, draft: EntryDraft, decision: Decision | None = None
    ) -> tuple[EntryDraft, Checked | None]:
        """The draft to record for an entry or exit, and what to store after it (None: nothing)."""
        rule = self.passback.get(door.id)
        tenant = draft.tenant_id
        if rule is None or draft.direction is None or tenant is None:
            return draft, None
        if decision is None:  # decided elsewhere (a face, card and face): the draft says it all
            decision = Decision(draft.decision == "granted", Reason(draft.reason), tenant)
        way = Direction(draft.direction)
        presence = presence_of(db, door.id, tenant) if way is Direction.IN else None
        checked = check_passage(decision, way, presence, rule, draft.ts.astimezone(self.zone))
        if checked.decision.reason is not decision.reason:
            draft = replace(draft, decision="denied", reason=checked.decision.reason.value)
        return draft, checked

    def _passed(self, w: Transaction, door: DoorConfig, draft: EntryDraft, checked: Checked | None, entry: str) -> None:
        """After the entry (which a full disk must not lose): the tenant's passage, a soft-mode alert."""
        if checked is None or draft.tenant_id is None:
            return
        if checked.alert:
            details = {"entry": entry, "reader": draft.reader, "card_number": draft.card_number, "method": draft.method}
            alert = w.alert(AlertDraft(draft.ts, "anti_passback", "raised", "warning", door=door.id,
                                       tenant_id=draft.tenant_id, details=details))  # fmt: skip
            metrics.ALERTS.labels("anti_passback", "raised").inc()
            log.warning("alert anti_passback raised door=%s tenant=%s (soft: let in) id=%s", door.id,
                        draft.tenant_id, alert.id)  # fmt: skip
        if checked.direction is not None:
            period = period_start(draft.ts.astimezone(self.zone), self.passback[door.id].reset_at)
            record_passage(w.db, door.id, draft.tenant_id, checked.direction, period, draft.ts)

    def open(self, door: DoorConfig, method: str, details: dict[str, Any] | None = None) -> str:
        """Exit button and remote opens: always granted, always logged (a remote one names who asked)."""
        draft = EntryDraft(ts=datetime.now(UTC), door=door.id, method=method, decision="granted", reason="granted",
                           details=details)  # fmt: skip
        return self.record(draft, door, True)

    def unlock(self, door: DoorConfig) -> None:
        lock = self.locks.get(door.lock.io)
        if lock is None:
            return
        sent = lock.pulse(door.lock.coil, door.lock.pulse_ms)
        # Wait (bounded) for the relay write to leave: this hands the GIL to the bus
        # thread now, instead of after the loop's bookkeeping for this entry.
        sent.wait(UNLOCK_SEND_WAIT_S)
        self.doors[door.id].unlocked(time.monotonic(), door.lock.pulse_ms / 1000.0)
        log.info("door %s unlocked for %d ms (%s coil %d)", door.id, door.lock.pulse_ms, door.lock.io, door.lock.coil)

    def _after(
        self,
        draft: EntryDraft,
        door: DoorConfig,
        granted: bool,
        entry_id: str,
        since_mono: float | None,
        steps: tuple[float, float] | None = None,
    ) -> None:
        if granted:
            self.unlock(door)
        reader = self.reader_devices.get(draft.reader) if draft.reader else None
        if reader is not None:  # after the relay: the feedback is queued to the reader's thread, never awaited
            reader.feedback(granted)
        timing = ""
        if since_mono is not None:
            done = time.monotonic()
            timing = f" in {(done - since_mono) * 1000:.2f} ms"
            if steps is not None:  # where the time went: waiting for the loop, decide + commit, relay hand-over
                picked, committed = steps
                timing += (f" (queue {(picked - since_mono) * 1000:.2f}, commit {(committed - picked) * 1000:.2f},"
                           f" relay {(done - committed) * 1000:.2f})")  # fmt: skip
        self._report(draft, entry_id, timing)

    def _report(self, draft: EntryDraft, entry_id: str, timing: str) -> None:
        self.notify_uplink()
        metrics.DECISIONS.labels(draft.door, draft.method, draft.decision, draft.reason).inc()
        card = f" {draft.card_number}/{draft.card_bits}" if draft.card_number is not None else ""
        door = f"{draft.door}/{draft.direction}" if draft.direction else draft.door  # main/in, main/out
        log.info("entry %s %s%s -> %s (%s) tenant=%s id=%s%s", door, draft.method, card, draft.decision,
                 draft.reason, draft.tenant_id, entry_id, timing)  # fmt: skip
        if draft.details and draft.details.get("ambiguous"):
            log.warning(
                "26-bit read %s matches %s enrolled cards: refused", draft.card_number, draft.details["matches"]
            )
        if draft.decision == "denied" and self.on_denied is not None:
            self.on_denied(draft)
        if self.on_entry is not None:
            self.on_entry(draft, entry_id)
