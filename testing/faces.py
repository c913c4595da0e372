"""Face photos for tests and benchmarks (the shared data set), and frames built from them.

`from testing.faces import faces_dir_path, lfw_photo, on_canvas`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]


def faces_dir_default() -> Path:
    """$ACCESSGW_FACES_DIR, else ../shared/data/faces beside the repo (whether it exists or not)."""
    configured = os.environ.get("ACCESSGW_FACES_DIR")
    return Path(configured) if configured else REPO.parent / "shared" / "data" / "faces"


def faces_dir_path() -> Path:
    """faces_dir_default(); fails the test (never skips) if it holds no lfw_subset."""
    path = faces_dir_default()
    if not (path / "lfw_subset").is_dir():
        source = "ACCESSGW_FACES_DIR" if os.environ.get("ACCESSGW_FACES_DIR") else "the default location"
        pytest.fail(f"face photos not found at {path} ({source}); set ACCESSGW_FACES_DIR to the faces folder")
    return path


def lfw_photo(person: str, number: int) -> Path:
    """lfw_subset/<person>/<person>_000N.jpg (250x250)."""
    return faces_dir_path() / "lfw_subset" / person / f"{person}_{number:04d}.jpg"


def example(name: str) -> Path:
    return faces_dir_path() / "face_recognition_repo" / "examples" / name


def on_canvas(photo: Path, size: int = 400, width: int = 640, height: int = 480) -> np.ndarray:
    """A BGR camera frame: the photo resized to size x size, centred on a black canvas."""
    rgb = np.asarray(Image.open(photo).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
    frame = np.zeros((height, width, 3), np.uint8)
    top, left = (height - size) // 2, (width - size) // 2
    frame[top : top + size, left : left + size] = rgb
    return np.ascontiguousarray(frame[:, :, ::-1])


def jpeg_bytes(img: Image.Image, quality: int = 95) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def blurred(photo: Path, radius: float = 4) -> bytes:
    return jpeg_bytes(Image.open(photo).filter(ImageFilter.GaussianBlur(radius)))
