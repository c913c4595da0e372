"""Every enrolment verdict, on real files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recognition.quality import REASONS, PhotoVerdict, assess_photo
from testing.faces import blurred, example, jpeg_bytes, lfw_photo


def check(verdict: PhotoVerdict, reason: str) -> PhotoVerdict:
    assert verdict.reason == reason, verdict.detail
    assert verdict.reason in REASONS and verdict.ok == (reason == "ok")
    assert verdict.detail.endswith(".") and len(verdict.detail) > 15  # a sentence for the administrator
    assert len(verdict.sha256) == 64
    return verdict


def landscape() -> bytes:
    """Sky, hills and grass with noise: edges everywhere, no face."""
    rng = np.random.default_rng(7)
    h, w = 480, 640
    y = np.arange(h)[:, None, None]
    sky = np.array([120, 170, 235]) * (1 - y / h) + np.array([200, 220, 250]) * (y / h)
    img = np.broadcast_to(sky, (h, w, 3)).copy()
    ridge = (300 + 40 * np.sin(np.arange(w) / 45.0)).astype(int)
    for x in range(w):
        img[ridge[x] :, x] = (60, 120 + (x % 7) * 5, 50)
    img += rng.normal(0, 12, img.shape)
    return jpeg_bytes(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)))


def test_a_normal_photo_is_ok_with_a_template() -> None:
    data = lfw_photo("Kofi_Annan", 1).read_bytes()
    v = check(assess_photo(data), "ok")
    assert v.encoding is not None and v.encoding.dtype == np.float32 and v.encoding.shape == (128,)
    assert 0.0 < v.quality <= 1.0
    assert v.sha256 == hashlib.sha256(data).hexdigest()


def test_a_text_file_is_unreadable(tmp_path: Path) -> None:
    text = tmp_path / "tenants.csv"
    text.write_text("id,name\nt1,Alice\n")
    v = check(assess_photo(text.read_bytes()), "unreadable")
    assert v.encoding is None and v.quality == 0.0


def test_a_truncated_jpeg_is_unreadable() -> None:
    data = example("obama.jpg").read_bytes()
    check(assess_photo(data[: len(data) * 2 // 3]), "unreadable")


def test_size_is_checked_before_decoding() -> None:
    # Garbage bytes: if they were decoded first the verdict would be "unreadable".
    check(assess_photo(b"\0" * 10_000_001), "too_large")
    photo = lfw_photo("Kofi_Annan", 1).read_bytes()
    check(assess_photo(photo, max_bytes=len(photo) - 1), "too_large")


def test_a_landscape_has_no_face() -> None:
    check(assess_photo(landscape()), "no_face")


def test_two_people_are_refused() -> None:
    v = check(assess_photo(example("two_people.jpg").read_bytes()), "multiple_faces")
    assert "2 faces" in v.detail


def test_small_faces_in_the_background_are_ignored() -> None:
    # Two more faces, 43 and 36 px wide, behind an 89 px face: less than half of it.
    check(assess_photo(lfw_photo("Roh_Moo-hyun", 2).read_bytes()), "ok")


def test_small_faces_are_found_and_judged_too_small() -> None:
    v = check(assess_photo(example("obama-240p.jpg").read_bytes()), "face_too_small")  # a 62 px face
    assert "62 px" in v.detail
    small = Image.open(lfw_photo("Kofi_Annan", 1)).resize((150, 150))  # face ~65 px
    check(assess_photo(jpeg_bytes(small)), "face_too_small")
    check(assess_photo(jpeg_bytes(small), min_face_px=50), "ok")


def test_a_blurred_photo_is_too_blurry() -> None:
    check(assess_photo(blurred(lfw_photo("Kofi_Annan", 1), radius=4)), "too_blurry")


@pytest.mark.parametrize(
    ("photo", "verdict"),
    [
        # The calibration's binding points (recognition/quality.py): the softest lfw_subset photos pass ...
        (lambda: lfw_photo("Laura_Bush", 8).read_bytes(), "ok"),
        (lambda: lfw_photo("Laura_Bush", 9).read_bytes(), "ok"),
        # ... and the sharpest radius-4 blurred copies fail.
        (lambda: blurred(lfw_photo("Hans_Blix", 1)), "too_blurry"),
        (lambda: blurred(lfw_photo("Junichiro_Koizumi", 10)), "too_blurry"),
        # A soft but usable 321 px video still passes because sharpness is judged at ~encoder scale.
        (lambda: example("lin-manuel-miranda.png").read_bytes(), "ok"),
    ],
)
def test_sharpness_calibration(photo, verdict: str) -> None:
    check(assess_photo(photo()), verdict)


def test_every_obama_portrait_but_the_tiny_one_passes(faces_dir: Path) -> None:
    for path in sorted((faces_dir / "face_recognition_repo" / "examples").glob("obama*.jpg")):
        expected = "face_too_small" if path.name == "obama-240p.jpg" else "ok"
        check(assess_photo(path.read_bytes()), expected)


def test_large_photos_are_judged_in_their_own_pixels() -> None:
    # obama-1080p is downscaled to 1600 px for detection; the face width is still reported at full size.
    v = check(assess_photo(example("obama-1080p.jpg").read_bytes(), min_face_px=200), "ok")
    assert "268 px" in v.detail
    check(assess_photo(example("obama-1080p.jpg").read_bytes(), min_face_px=300), "face_too_small")
