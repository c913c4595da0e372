"""Benchmark (d): will the face door open for the tenant every time and never for anyone else?

Protocol (written before the figures; run `.venv/bin/python -m bench.face_accuracy`):
- People: ../shared/data/faces/lfw_subset, 20 identities x 10 photos, sorted by name; the even-numbered
  ones are the TUNING half (settings were chosen on them), the odd-numbered ones the HELD-OUT half, whose
  figures are the result. The people of face_recognition_repo/examples (Obama, Biden, ...: 14 photos of 6
  people, group photos left out) are strangers in both halves, never enrolled.
- Enrolment as `accessgw face add` does it (gateway.enrolment.assess_photos with the configuration's
  landmarks, jitters and agreement check): a tenant's first 3 photos in file order; a refused photo is
  replaced by the next one, as an administrator would. Photos tried for enrolment are never presented.
- A presentation is what a door camera gives when a person holds still: frames of ONE photo, letterboxed
  on a 640x480 frame as the RTSP test camera shows it (testing.faces.on_canvas), each analysed like a
  camera frame (recognition.faces.analyse_frame: HOG on the downscaled frame, templates of every face
  from the full frame), fed to the product's FaceTracker with the product's match (TemplateIndex.judge,
  recognition.decision) for `FRAMES` frames. The presentation opens for whoever a track is confirmed as.
  Frames of a still photo are identical, so one analysis stands for all of them (stream compression is
  not modelled: tests/gateway/test_face_e2e.py and bench/face_unlock.py use the real RTSP path).
- Rosters: for each person h of the evaluated half (10 folds), h is the stranger, never enrolled; the
  other 9 are tenants, plus 1 or 10 people of the other half as further tenants: rosters of 10 and 19,
  every identity of the data set but the stranger at the largest. And a small building of 5: the 5 people
  after h (in a ring) are the tenants, the other 5 of the half (h included) strangers. Genuine: each
  tenant of the evaluated half presents each of their other photos. Impostor: the strangers' photos
  (h's, or the 5 outsiders' in the small building) and the 22 of the examples.
- Counted apart: a tenant accepted as themself (TAR), as another tenant (wrong tenant: a false accept),
  refused; a stranger accepted (FAR). TAR at FAR 1%, 0.1% and at zero false accepts comes from sweeping
  `threshold` with the other settings as configured (for a still photo the track's decision is "the
  nearest identity's distance is under its limit", checked against the real tracker at the configured
  threshold). Intervals: Wilson 95% for TAR; for zero false accepts the 95% upper bound on FAR (Clopper-
  Pearson, 1 - 0.025^(1/n)). Fold presentations share photos: the intervals use the distinct counts.
- The town watch list, in the same folds: the stranger h is also a person of interest, put on the watch
  list with the templates of their first 3 photos (as enrolment makes them). Their other 7 photos should
  raise a hit; no tenant's presentation and no other stranger's may (a false hit sends police to the wrong
  person). Counted with the configured watch rule (recognition.matcher), on the roster of that fold.
- BEFORE: the defaults as landed before this bench (5-point landmarks, 1 encoding per enrolment photo,
  no mirror, no agreement check, threshold 0.48, no cohort rule, min_frames 2), in the same run.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config.models import RecognitionConfig
from gateway.enrolment import assess_photos
from recognition.decision import MatchRule
from recognition.faces import analyse_frame
from recognition.index import TemplateIndex
from recognition.matcher import Matcher
from recognition.tracker import FaceTracker, Observation
from testing.faces import faces_dir_path, on_canvas

FRAMES = 4  # a still held for 0.4 s at 10 fps
ENROL = 3
FARS = (0.01, 0.001)
BEFORE = RecognitionConfig(landmarks=5, enrol_jitters=1, mirror=False, enrol_agreement=2.0 - 1e-9, threshold=0.48,
                           cohort_ratio=1e9, accept_at=0.0)  # fmt: skip
AFTER = RecognitionConfig()
EXAMPLE_PEOPLE = {"obama": "Obama", "biden": "Biden", "alex": "Lacamoire", "lin-manuel": "Miranda",
                  "johnsnow": "Harington", "kit_harington": "Harington", "rose_leslie": "Leslie"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    photos: list[Path]


@dataclass
class Prepared:
    """One configuration's view of the data: enrolled templates and each photo's camera faces."""

    enrolled: dict[str, list[np.ndarray]]  # person -> templates
    presented: dict[str, list[Path]]  # person -> photos not tried for enrolment
    faces: dict[Path, list[tuple[tuple[int, int, int, int], np.ndarray]]]  # photo -> (box, template) per face
    refused: dict[str, list[str]]  # person -> "photo: reason" of refused enrolment photos


def people() -> tuple[list[Person], list[Person], list[Person]]:
    """(tuning half, held-out half, example strangers)."""
    lfw = sorted((faces_dir_path() / "lfw_subset").iterdir())
    everyone = [Person(d.name, sorted(d.glob("*.jpg"))) for d in lfw if d.is_dir()]
    examples = faces_dir_path() / "face_recognition_repo" / "examples"
    strangers: dict[str, list[Path]] = {}
    for path in sorted(examples.rglob("*")):
        lowered = str(path.relative_to(examples)).lower()
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or "two_people" in lowered or "_and_" in lowered:
            continue
        who = next((name for key, name in EXAMPLE_PEOPLE.items() if key in lowered), None)
        if who is not None and "kit_with_rose" not in lowered:
            strangers.setdefault(who, []).append(path)
    return everyone[0::2], everyone[1::2], [Person(n, p) for n, p in sorted(strangers.items())]


def enrol_person(person: Person, cfg: RecognitionConfig) -> tuple[str, list[np.ndarray], list[Path], list[str]]:
    """The first ENROL photos that pass, replacing refused ones by the next; (name, templates, rest, refused)."""
    chosen, refused, next_photo = list(person.photos[:ENROL]), [], ENROL
    while True:
        results = assess_photos([(p.name, p.read_bytes()) for p in chosen], cfg)
        bad = [i for i, r in enumerate(results) if not r.verdict.ok]
        if not bad:
            templates = [r.verdict.encoding for r in results if r.verdict.encoding is not None]
            return person.name, templates, person.photos[next_photo:], refused
        for i in reversed(bad):
            refused.append(f"{chosen[i].name}: {results[i].verdict.reason}")
            if next_photo >= len(person.photos):
                raise SystemExit(f"{person.name}: fewer than {ENROL} photos pass enrolment ({refused})")
            chosen[i] = person.photos[next_photo]
            next_photo += 1


Faces = list[tuple[tuple[int, int, int, int], np.ndarray]]  # (box, template) per face of a frame


def camera_faces(photo: Path, cfg: RecognitionConfig) -> tuple[Path, Faces]:
    return photo, analyse_frame(on_canvas(photo, size=400), cfg.downscale, cfg.detector, cfg.landmarks, cfg.mirror)


def prepare(cfg: RecognitionConfig, tenants: list[Person], strangers: list[Person]) -> Prepared:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=ctx) as pool:
        # dlib's jitter draws from one random generator per process: each fresh worker gets a fixed run of
        # people, in order, so that the templates (and the figures) are the same on every run.
        per_worker = -(-len(tenants) // (os.cpu_count() or 1))
        enrolled = list(pool.map(enrol_person, tenants, [cfg] * len(tenants), chunksize=per_worker))
        photos = [p for person in tenants for p in person.photos] + [p for s in strangers for p in s.photos]
        faces = dict(pool.map(camera_faces, photos, [cfg] * len(photos), chunksize=4))
    return Prepared({n: t for n, t, _, _ in enrolled}, {n: r for n, _, r, _ in enrolled}, faces,
                    {n: f for n, _, _, f in enrolled})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Seen:
    """One presentation against one roster: the accepted identity's distance and limit per face, for sweeps."""

    person: str
    genuine: bool
    faces: tuple[tuple[str, float, float], ...]  # (nearest identity, distance, cohort-tightened limit at inf T)
    tracker_says: str | None  # what the real tracker confirmed, at the configured rule
    watch_hit: str | None  # the watch entry a track matched, if any
    watched: bool = False  # a presentation of the fold's person of interest (a hit is expected)


def present(matcher: Matcher, rule: MatchRule, cfg: RecognitionConfig, person: str, genuine: bool,
            faces: Faces, watched: bool = False) -> Seen:  # fmt: skip
    index = matcher.tenants
    tracker = FaceTracker(2.0, cfg.min_frames, matcher.tenant, watch=matcher.watch,
                          watch_min_frames=cfg.watch_min_frames)  # fmt: skip
    confirmed: str | None = None
    watch_hit: str | None = None
    for k in range(FRAMES):
        for update in tracker.update(k * 0.1, [Observation(box, enc) for box, enc in faces]):
            confirmed = confirmed or update.tenant_id
            watch_hit = watch_hit or update.watch_id
    open_rule = MatchRule(math.inf, 0.0, rule.cohort_ratio)  # the limit the cohort alone sets
    found = []
    for _, enc in faces:
        identity, distance = index.nearest(enc)
        if identity is not None:
            limit = open_rule.limit(index.cohort_distance(identity))
            found.append((identity, distance, limit))
    return Seen(person, genuine, tuple(found), confirmed, watch_hit, watched)


def decided(seen: Seen, threshold: float) -> str | None:
    accepted = [(d, who) for who, d, limit in seen.faces if d <= min(threshold, limit)]
    return min(accepted)[1] if accepted else None


def evaluate(prep: Prepared, cfg: RecognitionConfig, evaluated: list[Person], others: list[Person],
             strangers: list[Person], fillers: int, building: int = 0) -> list[Seen]:  # fmt: skip
    """`building` > 0: a small building instead, the `building` people after h (in a ring) as its tenants and
    the rest of the evaluated half, h included, as strangers."""
    rule = MatchRule(cfg.threshold, cfg.accept_at, cfg.cohort_ratio)
    seen: list[Seen] = []
    for k, h in enumerate(evaluated):
        if building:
            tenants = [evaluated[(k + 1 + j) % len(evaluated)] for j in range(building)]
            roster = [p.name for p in tenants]
            outsiders = [h, *(p for p in evaluated if p not in tenants and p is not h)]
        else:
            roster = [p.name for p in evaluated if p.name != h.name] + [p.name for p in others[:fillers]]
            outsiders = [h]
        index, watch = TemplateIndex(), TemplateIndex()
        for name in roster:
            index.add(name, prep.enrolled[name])
        watch.add(h.name, prep.enrolled[h.name])  # h: a stranger here, and a person of interest
        matcher = Matcher(cfg, index, watch)
        for name in roster[: len(evaluated) - 1]:
            for photo in prep.presented[name]:
                seen.append(present(matcher, rule, cfg, name, True, prep.faces[photo]))
        for stranger in [*outsiders, *strangers]:
            for photo in stranger.photos:
                watched = stranger is h and photo in prep.presented[h.name]
                seen.append(present(matcher, rule, cfg, stranger.name, False, prep.faces[photo], watched))
    for s in seen:
        assert decided(s, cfg.threshold) == s.tracker_says, (s, "the sweep must agree with the tracker")
    return seen


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Counts:
    right: int
    wrong: int
    genuine: int
    strangers_in: int
    impostor: int

    @property
    def tar(self) -> float:
        return self.right / self.genuine


def count(seen: list[Seen], threshold: float) -> Counts:
    right = sum(1 for s in seen if s.genuine and decided(s, threshold) == s.person)
    wrong = sum(1 for s in seen if s.genuine and decided(s, threshold) not in (None, s.person))
    strangers_in = sum(1 for s in seen if not s.genuine and decided(s, threshold) is not None)
    genuine = sum(1 for s in seen if s.genuine)
    return Counts(right, wrong, genuine, strangers_in, len(seen) - genuine)


def sweep(seen: list[Seen]) -> list[float]:
    return sorted({round(d, 4) for s in seen for _, d, _ in s.faces} | {0.0})


def watch_report(seen: list[Seen]) -> str:
    wanted = [s for s in seen if s.watched]
    hits = sum(1 for s in wanted if s.watch_hit == s.person)
    others = [s for s in seen if not s.watched and not (s.person == s.watch_hit and not s.genuine)]
    false_hits = [f"{s.person} as {s.watch_hit}" for s in others if s.watch_hit is not None]
    lo, hi = wilson(hits, len(wanted))
    return (f"watch list: {hits}/{len(wanted)} presentations of the person of interest hit ({hits / len(wanted):.1%}, "
            f"95% CI {lo:.1%}-{hi:.1%}); false hits {len(false_hits)} of {len(others)} other presentations"
            f"{': ' + ', '.join(false_hits[:5]) if false_hits else ''}")  # fmt: skip


def report(label: str, seen: list[Seen], cfg: RecognitionConfig, distinct_genuine: int,
           distinct_impostor: int) -> None:  # fmt: skip
    at = count(seen, cfg.threshold)
    lo, hi = wilson(round(at.tar * distinct_genuine), distinct_genuine)
    print(f"  {label}: {at.genuine} genuine, {at.impostor} impostor presentations")
    print(f"    as configured (threshold {cfg.threshold}): TAR {at.tar:.1%} (95% CI {lo:.1%}-{hi:.1%}), wrong tenant "
          f"{at.wrong}, strangers accepted {at.strangers_in} (FAR {at.strangers_in / at.impostor:.2%})")  # fmt: skip
    thresholds = sweep(seen)
    for far in (*FARS, 0.0):
        best = None
        for t in thresholds:
            c = count(seen, t)
            if c.strangers_in <= far * c.impostor and (far > 0 or c.wrong == 0):
                best = (t, c)
        if best is None:
            print(f"    FAR {far:.1%}: no threshold")
            continue
        t, c = best
        lo, hi = wilson(round(c.tar * distinct_genuine), distinct_genuine)
        name = "zero false accepts" if far == 0 else f"FAR {far:.1%}"
        bound = f"; FAR < {1 - 0.025 ** (1 / distinct_impostor):.1%} (95%)" if far == 0 else ""
        print(f"    at {name}: TAR {c.tar:.1%} (95% CI {lo:.1%}-{hi:.1%}) at threshold {t:.3f}{bound}")


def table(seen: list[Seen]) -> str:
    """TAR / strangers accepted at thresholds around the configured one (the other settings as configured)."""
    cells = []
    for t in np.arange(0.42, 0.545, 0.01):
        c = count(seen, float(t))
        cells.append(f"{t:.2f}: {c.tar:.1%}/{c.strangers_in + c.wrong}")
    return "TAR/false accepts by threshold: " + "  ".join(cells)


def distances(seen: list[Seen]) -> str:
    gen = sorted(min((d for who, d, _ in s.faces if who == s.person), default=9.0) for s in seen if s.genuine)
    imp = sorted(min((d for _, d, _ in s.faces), default=9.0) for s in seen if not s.genuine)
    q = np.percentile(gen, [50, 90, 97, 100]).round(3)
    lowest = [round(x, 3) for x in imp[:4]]
    return f"tenants' own distance p50/p90/p97/max {q.tolist()}; strangers' nearest: lowest {lowest}"


def run(label: str, cfg: RecognitionConfig, halves: dict[str, tuple[list[Person], list[Person]]],
        strangers: list[Person]) -> None:  # fmt: skip
    t0 = time.perf_counter()
    everyone = [p for half, _ in halves.values() for p in half]
    prep = prepare(cfg, everyone, strangers)
    refused = {n: r for n, r in prep.refused.items() if r}
    print(f"{label} (landmarks {cfg.landmarks}, enrolment jitters {cfg.enrol_jitters}, mirror {cfg.mirror}, "
          f"threshold {cfg.threshold}, "
          f"cohort_ratio {cfg.cohort_ratio:g}, accept_at {cfg.accept_at}, min_frames {cfg.min_frames}); prepared in "
          f"{time.perf_counter() - t0:.0f} s; enrolment refused: {refused or 'none'}")  # fmt: skip
    for half, (evaluated, others) in halves.items():
        distinct_genuine = sum(len(prep.presented[p.name]) for p in evaluated)
        distinct_impostor = sum(len(p.photos) for p in evaluated) + sum(len(s.photos) for s in strangers)
        for fillers, building in ((0, 5), (1, 0), (len(others), 0)):
            seen = evaluate(prep, cfg, evaluated, others, strangers, fillers, building)
            roster = building or len(evaluated) - 1 + fillers
            report(f"{half}, roster of {roster}", seen, cfg, distinct_genuine, distinct_impostor)
            print(f"    {distances(seen)}")
            print(f"    {table(seen)}")
            print(f"    {watch_report(seen)}")


def main() -> None:
    tuning, held_out, strangers = people()
    others = ", ".join(f"{s.name} ({len(s.photos)})" for s in strangers)
    print(f"machine: {os.cpu_count()} cores; held out: {', '.join(p.name for p in held_out)}; strangers: "
          f"{others}; a presentation is {FRAMES} frames")  # fmt: skip
    halves = {"HELD-OUT": (held_out, tuning), "tuning": (tuning, held_out)}
    run("BEFORE: the landed defaults", BEFORE, halves, strangers)
    run("AFTER: the defaults now", AFTER, halves, strangers)
    run("AFTER, with recognition.mirror: true", RecognitionConfig(mirror=True), halves, strangers)


if __name__ == "__main__":
    main()

