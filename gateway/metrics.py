"""Prometheus metrics of the gateway (served at /metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge

SWIPES = Counter("accessgw_swipes", "Card frames that passed framing and parity checks", ["reader"])
BAD_FRAMES = Counter("accessgw_bad_frames", "Card frames rejected by the framer", ["reader", "kind"])
DECISIONS = Counter("accessgw_decisions", "Entry decisions", ["door", "method", "decision", "reason"])
ALERTS = Counter("accessgw_alerts", "Alerts raised or cleared", ["kind", "state"])
FACES = Counter("accessgw_faces_seen", "Faces seen in analysed frames", ["camera"])
OUTBOX_DEPTH = Gauge("accessgw_outbox_depth", "Events waiting for the broker's acknowledgement (or the town's receipt)")
FRAMES_ANALYSED = Gauge("accessgw_recognition_frames_analysed", "Frames analysed by the face pipeline")
FRAMES_DROPPED = Gauge("accessgw_recognition_frames_dropped", "Frames skipped because the workers were busy")
TEMPLATES = Gauge("accessgw_recognition_templates", "Face templates in the matching index")


def bind(gauge: Gauge, source: Callable[[], float]) -> None:
    """Read `gauge` from `source` at scrape time (the last gateway built in a process wins)."""
    gauge.set_function(source)
