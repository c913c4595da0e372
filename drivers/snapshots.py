"""JPEG snapshots of entries and alerts, from BGR frames (OpenCV imencode)."""

from __future__ import annotations

import cv2
import numpy as np


def encode_jpeg(frame_bgr: np.ndarray, quality: int = 85, max_width: int | None = 1280) -> bytes:
    """The frame as JPEG bytes, scaled down (aspect kept) when wider than `max_width`.

    `frame_bgr` is uint8, (H, W, 3) BGR or (H, W) grey; it is never modified (read-only frames
    from RtspCapture are fine). Raises ValueError for anything else.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, not {quality}")
    if max_width is not None and max_width < 1:
        raise ValueError(f"max_width must be positive, not {max_width}")
    image = np.asarray(frame_bgr)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"expected a uint8 BGR or grey image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("empty image")
    if max_width is not None and width > max_width:
        new_height = max(1, round(height * max_width / width))
        image = cv2.resize(image, (max_width, new_height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()
