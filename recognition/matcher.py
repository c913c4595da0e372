"""Who a face is, for the tracker: the tenants' index and the town's watch list, each with its open-set rule."""

from __future__ import annotations

import numpy as np

from config.models import RecognitionConfig
from recognition.decision import Match, MatchRule
from recognition.index import TemplateIndex


class Matcher:
    def __init__(self, cfg: RecognitionConfig, tenants: TemplateIndex, watch: TemplateIndex | None = None) -> None:
        self.tenants, self.watch_list = tenants, watch
        self._tenant_rule = MatchRule(cfg.threshold, cfg.accept_at, cfg.cohort_ratio)
        self._watch_rule = MatchRule(cfg.watch_threshold, 0.0, cfg.cohort_ratio)  # never at once

    def tenant(self, probe: np.ndarray) -> Match:
        return self.tenants.judge(probe, self._tenant_rule)

    def watch(self, probe: np.ndarray) -> Match:
        """A watch-list hit sends police: judged against the tenants too (a watch entry that looks like a
        tenant needs a closer match), and never when the face is nearer a tenant than the entry."""
        if self.watch_list is None:
            return Match(None, float("inf"))
        hit = self.watch_list.judge(probe, self._watch_rule, cohort=self.tenants)
        if hit.identity is not None and self.tenants.nearest(probe)[1] < hit.distance:
            return Match(None, hit.distance)
        return hit
