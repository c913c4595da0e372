"""When a face is taken for an enrolled identity: the open-set rule, as a pure function.

Measured with bench/face_accuracy.py (LFW identities presented as a camera shows a still photo; settings
chosen on the tuning half, figures from the held-out half):
- One fixed threshold cannot serve a building of 10 and one of 500: every tenant added is one more face a
  stranger can resemble. With the old rule the threshold that keeps strangers under FAR 1% fell from
  0.542 with 10 tenants enrolled to 0.495 with 19.
- The cohort rule: an identity whose templates lie close to another enrolled identity's (a look-alike in
  the gallery) needs a closer match: its limit is `cohort_ratio` x that distance, never above `threshold`.
- A match under `accept_at` is clear: no stranger came that close on either half (closest 0.437), and
  about two thirds of tenants' presentations do, so it is taken on the first frame (a faster door).
  Between `accept_at` and the limit the track must gather `min_frames` frames first.
- The gap between the best and the second-best identity did not help (a stranger resembles one tenant,
  not two), so it is not used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple


class Match(NamedTuple):
    """What a template index answers for a probe: the identity if acceptable, else None."""

    identity: str | None
    distance: float  # to the nearest template (of `identity` when set)
    clear: bool = False  # close enough to be taken at once, without more frames


@dataclass(frozen=True, slots=True)
class MatchRule:
    threshold: float  # never accepted above this
    accept_at: float = 0.0  # at or under: clear (0 never)
    cohort_ratio: float = math.inf  # the limit is at most this times the identity's cohort distance

    def limit(self, cohort_distance: float) -> float:
        """The largest distance accepted for an identity whose nearest other identity is `cohort_distance` away."""
        return min(self.threshold, self.cohort_ratio * cohort_distance)

    def judge(self, identity: str | None, distance: float, cohort_distance: float) -> Match:
        if identity is None or distance > self.limit(cohort_distance):
            return Match(None, distance)
        return Match(identity, distance, distance <= self.accept_at)
