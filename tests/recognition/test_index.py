"""TemplateIndex against brute force, on real templates and on large random rosters."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from recognition.index import TemplateIndex
from recognition.quality import assess_photo
from testing.faces import lfw_photo

PEOPLE = ("Kofi_Annan", "Tom_Ridge", "Serena_Williams")


@pytest.fixture(scope="module")
def real() -> dict[str, list[np.ndarray]]:
    """Three real templates each for three people (photos 1-3 enrol, 4 is the probe)."""
    out = {}
    for person in PEOPLE:
        verdicts = [assess_photo(lfw_photo(person, n).read_bytes()) for n in (1, 2, 3, 4)]
        assert all(v.ok for v in verdicts), [v.detail for v in verdicts]
        out[person] = [v.encoding for v in verdicts]
    return out


def brute_force(rows: list[tuple[str, np.ndarray]], probe: np.ndarray) -> tuple[str, float]:
    dists = [float(np.linalg.norm(vec.astype(np.float64) - probe.astype(np.float64))) for _, vec in rows]
    i = int(np.argmin(dists))
    return rows[i][0], dists[i]


def test_real_probes_find_their_person(real) -> None:
    index = TemplateIndex()
    for person in PEOPLE:
        index.add(person, real[person][:3])
    assert len(index) == 9 and index.tenants() == set(PEOPLE)
    rows = [(p, e) for p in PEOPLE for e in real[p][:3]]
    for person in PEOPLE:
        probe = real[person][3]
        tenant, distance = index.nearest(probe)
        want_tenant, want_distance = brute_force(rows, probe)
        assert tenant == want_tenant == person
        assert distance == pytest.approx(want_distance, abs=1e-5)
        assert index.match(probe, threshold=distance + 0.01) == (person, pytest.approx(distance))
        assert index.match(probe, threshold=distance - 0.01)[0] is None


def test_large_random_roster_matches_brute_force(real) -> None:
    rng = np.random.default_rng(1)
    base = np.stack([e for p in PEOPLE for e in real[p]])
    vectors = (base[rng.integers(0, len(base), 5000)] + rng.normal(0, 0.05, (5000, 128))).astype(np.float32)
    rows = [(f"t{i // 3}", v) for i, v in enumerate(vectors)]
    index = TemplateIndex()
    index.replace_all(rows)
    matrix = vectors.astype(np.float64)
    for probe in (base + rng.normal(0, 0.05, base.shape)).astype(np.float32):
        dists = np.linalg.norm(matrix - probe, axis=1)
        tenant, distance = index.nearest(probe)
        assert distance == pytest.approx(dists.min(), abs=1e-4)
        assert tenant in {rows[i][0] for i in np.flatnonzero(dists <= dists.min() + 1e-4)}


def test_identical_probe_has_distance_zero_not_nan(real) -> None:
    index = TemplateIndex()
    index.add("kofi", real["Kofi_Annan"][:1])
    assert index.nearest(real["Kofi_Annan"][0]) == ("kofi", pytest.approx(0.0, abs=1e-3))


def test_remove_takes_effect_at_once(real) -> None:
    index = TemplateIndex()
    index.replace_all([(p, e) for p in PEOPLE for e in real[p][:3]])
    probe = real["Tom_Ridge"][3]
    assert index.match(probe, 0.6)[0] == "Tom_Ridge"
    index.remove("Tom_Ridge")
    assert index.tenants() == {"Kofi_Annan", "Serena_Williams"} and len(index) == 6
    tenant, distance = index.match(probe, 0.6)
    assert tenant is None and distance > 0.6
    index.remove("nobody")  # no-op
    index.add("Tom_Ridge", real["Tom_Ridge"][:1])  # re-enrolment appends
    assert index.match(probe, 0.6)[0] == "Tom_Ridge" and len(index) == 7


def test_empty_index_and_bad_templates() -> None:
    index = TemplateIndex()
    assert index.nearest(np.zeros(128, np.float32)) == (None, float("inf"))
    assert index.match(np.zeros(128, np.float32), 0.5) == (None, float("inf"))
    index.replace_all([])
    assert len(index) == 0 and index.tenants() == set()
    with pytest.raises(ValueError):
        index.add("x", [np.zeros(127)])


def test_readers_see_whole_rosters_while_a_writer_swaps_them(real) -> None:
    old = [(p, e) for p in PEOPLE for e in real[p][:3]]
    new = [(f"{p}-v2", e) for p, e in old]
    index = TemplateIndex()
    index.replace_all(old)
    probe = real["Kofi_Annan"][3]
    stop = threading.Event()
    seen: set[str | None] = set()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                seen.add(index.nearest(probe)[0])
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(300):
        index.replace_all(new if i % 2 else old)
        index.remove("Tom_Ridge")
    stop.set()
    for t in threads:
        t.join(5)
    assert not errors
    assert seen <= {"Kofi_Annan", "Kofi_Annan-v2"}
