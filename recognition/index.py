"""In-memory 1:N index of the active tenants' face templates.

Readers never lock: every write builds new arrays and swaps one immutable snapshot in with a
single attribute assignment (atomic in CPython), so a reader sees the old or the new roster,
never half of one. Writers are serialised by a lock among themselves.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from recognition.decision import Match, MatchRule

DIM = 128


@dataclass(frozen=True, slots=True)
class _Snapshot:
    vectors: np.ndarray  # float32 (N, 128), C-contiguous: one pass of memory per probe
    sq_norms: np.ndarray  # float32 (N,): |a|², precomputed so a probe costs one matrix-vector product
    tenant_ids: np.ndarray  # object (N,): tenant of each row
    # identity -> distance from its templates to the nearest template of another identity, computed
    # on first use (k x N per identity) and valid as long as this snapshot is.
    cohort: dict[str, tuple[object, float]] = field(default_factory=dict, compare=False)

    @staticmethod
    def build(vectors: np.ndarray, tenant_ids: np.ndarray) -> _Snapshot:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, DIM)
        sq_norms = np.einsum("ij,ij->i", vectors, vectors)
        return _Snapshot(vectors, sq_norms, np.asarray(tenant_ids, dtype=object).reshape(-1))


_EMPTY = _Snapshot.build(np.empty((0, DIM), np.float32), np.empty(0, object))


class TemplateIndex:
    def __init__(self) -> None:
        self._snap = _EMPTY
        self._write = threading.Lock()

    # -- writers ------------------------------------------------------------------------------
    def replace_all(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """The whole roster at once (start-up, roster snapshot): one (tenant_id, template) per row."""
        rows = [(tenant, _as_template(vec)) for tenant, vec in items]
        vectors = np.stack([v for _, v in rows]) if rows else np.empty((0, DIM), np.float32)
        with self._write:
            self._snap = _Snapshot.build(vectors, np.array([t for t, _ in rows], dtype=object))

    def add(self, tenant_id: str, encodings: Iterable[np.ndarray]) -> None:
        """Append templates for a tenant (its existing ones stay)."""
        new = [_as_template(e) for e in encodings]
        if not new:
            return
        with self._write:
            old = self._snap
            vectors = np.concatenate([old.vectors, np.stack(new)])
            tenants = np.concatenate([old.tenant_ids, np.full(len(new), tenant_id, dtype=object)])
            self._snap = _Snapshot.build(vectors, tenants)

    def remove(self, tenant_id: str) -> None:
        """Drop every template of a tenant; the next probe no longer sees them (revocation is immediate)."""
        with self._write:
            old = self._snap
            keep = old.tenant_ids != tenant_id
            if keep.all():
                return
            self._snap = _Snapshot(old.vectors[keep], old.sq_norms[keep], old.tenant_ids[keep])

    # -- readers ------------------------------------------------------------------------------
    def nearest(self, probe: np.ndarray) -> tuple[str | None, float]:
        """The tenant owning the closest template and its Euclidean distance; (None, inf) when empty."""
        snap = self._snap  # one read: the rest of the call works on a consistent roster
        if len(snap.vectors) == 0:
            return None, float("inf")
        p = _as_template(probe)
        # |a-b|² = |a|² + |b|² - 2a·b; rounding can make it slightly negative for a == b.
        d2 = snap.sq_norms - 2.0 * (snap.vectors @ p)
        i = int(np.argmin(d2))
        return snap.tenant_ids[i], float(np.sqrt(max(float(d2[i]) + float(p @ p), 0.0)))

    def match(self, probe: np.ndarray, threshold: float) -> tuple[str | None, float]:
        """Like nearest(), but the tenant is None when the distance is above `threshold`."""
        tenant, distance = self.nearest(probe)
        return (tenant if distance <= threshold else None), distance

    def judge(self, probe: np.ndarray, rule: MatchRule, cohort: TemplateIndex | None = None) -> Match:
        """The open-set decision of recognition.decision for the nearest identity.

        Its cohort distance is measured against this index's other identities and, when given, every
        template of `cohort` (the watch list is judged against the tenants too).
        """
        snap = self._snap
        identity, distance = self.nearest(probe)
        if identity is None or distance > rule.threshold:
            return Match(None, distance)
        return rule.judge(identity, distance, self.cohort_distance(identity, cohort, snap))

    def cohort_distance(
        self, identity: str, cohort: TemplateIndex | None = None, snap: _Snapshot | None = None
    ) -> float:
        """Distance from `identity`'s templates to the nearest template of another identity (or of `cohort`)."""
        return _cohort_distance(snap or self._snap, identity, cohort._snap if cohort is not None else None)

    def __len__(self) -> int:
        return len(self._snap.vectors)

    def tenants(self) -> set[str]:
        return set(self._snap.tenant_ids.tolist())


def _cohort_distance(snap: _Snapshot, identity: str, extra: _Snapshot | None) -> float:
    cached = snap.cohort.get(identity)
    if cached is not None and cached[0] is extra:  # measured against this very cohort snapshot
        return cached[1]
    own = snap.tenant_ids == identity
    best = _nearest_between(snap.vectors[own], snap.vectors[~own], snap.sq_norms[~own])
    if extra is not None and len(extra.vectors):
        best = min(best, _nearest_between(snap.vectors[own], extra.vectors, extra.sq_norms))
    snap.cohort[identity] = (extra, best)  # a race only computes it twice
    return best


def _nearest_between(rows: np.ndarray, others: np.ndarray, other_sq: np.ndarray) -> float:
    if not len(rows) or not len(others):
        return math.inf
    d2 = other_sq[None, :] - 2.0 * (rows @ others.T) + np.einsum("ij,ij->i", rows, rows)[:, None]
    return float(np.sqrt(max(float(d2.min()), 0.0)))


def _as_template(vec: np.ndarray) -> np.ndarray:
    arr = np.asarray(vec, dtype=np.float32).reshape(-1)
    if arr.shape != (DIM,):
        raise ValueError(f"a face template has {DIM} values, got {arr.size}")
    return arr
