"""Enrolment photos of one tenant must show one person (gateway.enrolment)."""

from __future__ import annotations

from config.models import RecognitionConfig
from gateway.enrolment import assess_photos
from testing.faces import lfw_photo

FAST = RecognitionConfig(enrol_jitters=1)


def test_a_photo_of_someone_else_is_refused_and_named() -> None:
    photos = [("kofi-1.jpg", lfw_photo("Kofi_Annan", 1)), ("kofi-2.jpg", lfw_photo("Kofi_Annan", 2)),
              ("serena.jpg", lfw_photo("Serena_Williams", 1)), ("kofi-3.jpg", lfw_photo("Kofi_Annan", 3))]  # fmt: skip
    results = assess_photos([(name, path.read_bytes()) for name, path in photos], FAST)
    assert [(r.name, r.verdict.ok, r.verdict.reason) for r in results] == [
        ("kofi-1.jpg", True, "ok"), ("kofi-2.jpg", True, "ok"), ("serena.jpg", False, "not_the_same_person"),
        ("kofi-3.jpg", True, "ok")]  # fmt: skip
    assert results[2].verdict.encoding is None and "does not match" in results[2].verdict.detail

