"""Helpers for camera driver tests: the real face photos, reference pictures, a silent TCP peer.

The RTSP and ONVIF peers themselves are tests/media/rtsp_fixture.py (GStreamer, system python3)
and tests/media/onvif_fixture.py (ipycam pinned to 127.0.0.1).
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import cv2
import numpy as np

from testing.faces import faces_dir_path as faces_dir

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 640, 480  # the test camera's canvas


def photo(name: str, index: int = 1) -> Path:
    """An LFW photo, e.g. photo("Andre_Agassi") -> .../lfw_subset/Andre_Agassi/Andre_Agassi_0001.jpg."""
    path = faces_dir() / "lfw_subset" / name / f"{name}_{index:04d}.jpg"
    if not path.is_file():
        raise RuntimeError(f"missing test photo {path}")
    return path


def letterboxed(path: Path) -> np.ndarray:
    """What the test camera shows for `path` with --fit scale: scaled to the height, centred on black."""
    image = cv2.imread(str(path))
    if image is None:
        raise RuntimeError(f"cannot read {path}")
    scale = min(WIDTH / image.shape[1], HEIGHT / image.shape[0])
    w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    x, y = (WIDTH - w) // 2, (HEIGHT - h) // 2
    canvas[y : y + h, x : x + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return canvas


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference at 1/8 scale (robust to H.264 noise)."""
    small = (WIDTH // 8, HEIGHT // 8)
    sa = cv2.resize(a, small, interpolation=cv2.INTER_AREA).astype(np.int16)
    sb = cv2.resize(b, small, interpolation=cv2.INTER_AREA).astype(np.int16)
    return float(np.abs(sa - sb).mean())


def shows(image: np.ndarray, references: dict[str, np.ndarray]) -> str:
    """The name of the reference picture `image` is closest to."""
    return min(references, key=lambda name: difference(image, references[name]))


class SilentServer:
    """A loopback TCP server that accepts connections and never answers: a hung camera."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port: int = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)

    def close(self) -> None:
        self._closed.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        for conn in self._conns:
            conn.close()
        self._thread.join(2)

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def process_cpu_s() -> float:
    """CPU seconds (user + system) of this whole process, all threads."""
    times = os.times()
    return times.user + times.system
