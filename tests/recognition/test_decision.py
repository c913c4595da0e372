"""The open-set rule (recognition.decision), the index's cohort distances and the enrolment agreement check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recognition.agreement import disagreeing
from recognition.decision import Match, MatchRule
from recognition.index import TemplateIndex
from recognition.tracker import FaceTracker, Observation

RULE = MatchRule(threshold=0.5, accept_at=0.4, cohort_ratio=0.8)


def unit(i: int, scale: float = 1.0) -> np.ndarray:
    v = np.zeros(128, np.float32)
    v[i] = scale
    return v


def at(base: np.ndarray, distance: float, axis: int) -> np.ndarray:
    """A point `distance` from `base`, along a fresh axis."""
    return base + unit(axis, distance)


@pytest.mark.parametrize(
    ("distance", "cohort", "expected"),
    [
        (0.30, math.inf, Match("t", 0.30, True)),  # clear: at once
        (0.45, math.inf, Match("t", 0.45, False)),  # acceptable, after min_frames
        (0.50, math.inf, Match("t", 0.50, False)),  # the threshold itself
        (0.51, math.inf, Match(None, 0.51)),
        (0.45, 0.55, Match(None, 0.45)),  # a look-alike 0.55 away: the limit is 0.44
        (0.35, 0.40, Match(None, 0.35)),  # even a "clear" distance, when the look-alike is that close
        (0.30, 0.40, Match("t", 0.30, True)),
    ],
)
def test_the_limit_is_the_threshold_tightened_by_the_cohort(distance: float, cohort: float, expected: Match) -> None:
    assert RULE.judge("t", distance, cohort) == expected


def test_nothing_is_accepted_from_an_empty_index_or_with_accept_at_zero() -> None:
    assert RULE.judge(None, 0.1, math.inf) == Match(None, 0.1)
    assert MatchRule(0.5).judge("t", 0.1, math.inf) == Match("t", 0.1, False)  # never clear


def test_the_index_measures_each_identitys_cohort() -> None:
    a, b, c = unit(0), at(unit(0), 0.5, 1), unit(2, 3.0)  # b is 0.5 from a; c far from both
    index = TemplateIndex()
    index.add("a", [a])
    index.add("c", [c])
    probe = at(a, 0.45, 3)
    assert index.judge(probe, RULE) == Match("a", pytest.approx(0.45), False)  # no look-alike: 0.5 applies
    index.add("b", [b])  # now a's nearest other identity is 0.5 away: a's limit is 0.4
    assert index.judge(probe, RULE).identity is None
    assert index.judge(at(a, 0.3, 3), RULE) == Match("a", pytest.approx(0.3), True)
    index.remove("b")
    assert index.judge(probe, RULE).identity == "a"  # a new snapshot, a new cohort


def test_a_watch_entry_is_judged_against_the_tenants_too() -> None:
    tenants, watch = TemplateIndex(), TemplateIndex()
    watch.add("W1", [unit(0)])
    tenants.add("t", [at(unit(0), 0.5, 1)])  # a tenant who looks like the watch entry
    probe = at(unit(0), 0.45, 3)
    assert watch.judge(probe, RULE).identity == "W1"
    assert watch.judge(probe, RULE, cohort=tenants).identity is None  # limit 0.4 because of the tenant


def test_a_clear_match_is_confirmed_on_the_first_frame() -> None:
    index = TemplateIndex()
    index.add("a", [unit(0)])
    box = (100, 300, 300, 100)

    def track(distance: float) -> list[bool]:
        tracker = FaceTracker(2.0, 2, lambda probe: index.judge(probe, RULE))
        return [tracker.update(i * 0.1, [Observation(box, at(unit(0), distance, 5))])[0].confirmed for i in range(3)]

    assert track(0.3) == [True, True, True]
    assert track(0.45) == [False, True, True]  # close: two frames
    assert track(0.55) == [False, False, False]


def test_an_enrolment_photo_unlike_the_others_is_named() -> None:
    same = [unit(0), at(unit(0), 0.4, 1), at(unit(0), 0.45, 2)]
    assert disagreeing(same, 0.6) == []
    assert disagreeing([*same, unit(3, 2.0)], 0.6) == [3]
    assert disagreeing([unit(0), unit(1, 2.0)], 0.6) == [0, 1]  # two that disagree: both named
    assert disagreeing([unit(0)], 0.6) == []
