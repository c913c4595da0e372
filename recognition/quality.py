"""Enrolment photo checks: one clear verdict per photo, and its template when it passes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from recognition.faces import Box, Landmarks, PhotoError, decode_image, encode, locate, scale_box

REASONS = ("ok", "unreadable", "too_large", "no_face", "multiple_faces", "face_too_small", "too_blurry",
           "not_the_same_person")  # fmt: skip

# Sharpness = variance of the Laplacian over the inner 80 % of the face box, grey, with faces wider than
# SHARPNESS_FACE_PX first shrunk to that width: the encoder sees a ~150 px chip, so softness that vanishes at
# that scale does not matter (a soft 300 px video still, examples/lin-manuel-miranda.png, scores 138 instead
# of 12.7 at full size). Calibrated on ../shared/data/faces: the lowest of the 200 lfw_subset photos is 15.6
# (Laura_Bush_0008, a soft upscaled picture; next 17.7, 1st percentile ~32); obama*.jpg and the other
# examples score 100-2900; Pillow GaussianBlur(radius=4) copies of every lfw_subset photo score at most 10.8
# (radius 3: <= 17.6; radius 2: median 13). 13.0 sits at the geometric middle of 10.8 and 15.6 (x1.2 each side).
DEFAULT_MIN_SHARPNESS = 13.0
SHARPNESS_FACE_PX = 128
DETECT_MAX_SIDE = 1600  # larger photos are detected on a downscaled copy; sizes are judged in original pixels
BACKGROUND_RATIO = 0.5  # a face narrower than this fraction of the largest one is someone in the background


@dataclass(frozen=True, slots=True)
class PhotoVerdict:
    ok: bool
    reason: str  # one of REASONS
    detail: str  # a sentence for the administrator
    encoding: np.ndarray | None = field(default=None, repr=False, compare=False)  # float32 (128,) when ok
    quality: float = 0.0  # 0..1, higher is better (sharpness and face size); 0 unless ok
    sha256: str = ""  # of the photo's bytes, stored with the template instead of the photo


def assess_photo(
    data: bytes,
    *,
    max_bytes: int = 10_000_000,
    min_face_px: int = 80,
    min_sharpness: float = DEFAULT_MIN_SHARPNESS,
    landmarks: Landmarks = 68,
    jitters: int = 1,
    mirror: bool = False,
) -> PhotoVerdict:
    digest = hashlib.sha256(data).hexdigest()

    def fail(reason: str, detail: str) -> PhotoVerdict:
        return PhotoVerdict(False, reason, detail, sha256=digest)

    if len(data) > max_bytes:
        return fail("too_large", f"The file is {len(data):,} bytes; at most {max_bytes:,} are accepted.")
    try:
        rgb = decode_image(data)
    except PhotoError as exc:
        return fail(exc.reason, exc.detail)

    work, scale = _working_copy(rgb)
    # upsample=1 so that small faces are found (and refused as too small) rather than missed as "no face".
    faces = _foreground(locate(work, upsample=1))
    if not faces:
        return fail("no_face", "No face was found in the photo.")
    if len(faces) > 1:
        return fail("multiple_faces", f"{len(faces)} faces of similar size were found; the photo must show one person.")
    box = faces[0]
    width_px = _width(box) / scale
    if width_px < min_face_px:
        return fail("face_too_small", f"The face is {width_px:.0f} px wide; at least {min_face_px} px are needed.")
    sharpness = face_sharpness(work, box)
    if sharpness < min_sharpness:
        return fail("too_blurry", f"The face is too blurry (sharpness {sharpness:.1f}, at least {min_sharpness:g}).")

    (encoding,) = encode(rgb, [scale_box(box, scale, *rgb.shape[:2])], landmarks, jitters, mirror)
    quality = 0.5 * min(1.0, sharpness / (4 * min_sharpness)) + 0.5 * min(1.0, width_px / (2 * min_face_px))
    detail = f"One face, {width_px:.0f} px wide, sharpness {sharpness:.1f}."
    return PhotoVerdict(True, "ok", detail, encoding, round(quality, 3), digest)


def face_sharpness(rgb: np.ndarray, box: Box) -> float:
    """Variance of the Laplacian of the face's inner 80 % (skips hair and background edges)."""
    top, right, bottom, left = box
    dy, dx = (bottom - top) // 10, (right - left) // 10
    crop = rgb[top + dy : bottom - dy, left + dx : right - dx]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    if right - left > SHARPNESS_FACE_PX:
        factor = SHARPNESS_FACE_PX / (right - left)
        grey = cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _working_copy(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo itself, or a copy whose longer side is DETECT_MAX_SIDE (HOG with upsample grows as pixels²)."""
    side = max(rgb.shape[:2])
    if side <= DETECT_MAX_SIDE:
        return rgb, 1.0
    scale = DETECT_MAX_SIDE / side
    return cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale


def _foreground(boxes: list[Box]) -> list[Box]:
    if not boxes:
        return []
    largest = max(_width(b) for b in boxes)
    return [b for b in boxes if _width(b) >= BACKGROUND_RATIO * largest]


def _width(box: Box) -> int:
    return box[1] - box[3]

