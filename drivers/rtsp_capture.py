"""RTSP capture: one daemon thread per camera keeps the newest decoded frame and reports online/offline.

The thread resolves the camera's stream (ONVIF or a plain `rtsp_url`, drivers/onvif_camera.py), opens
it with OpenCV's FFmpeg backend and reads continuously. Only the newest frame is kept: `latest()`
returns it at once; `wait_frame()` blocks for the next one; `on_frame` sees each kept frame. It
emits `CameraStatus(online=True)` when frames flow and `CameraStatus(online=False, error=...)` when
the stream cannot be opened or stops, once per transition, and reconnects with exponential backoff
until `stop()` (the thread skeleton is drivers/threaded_device.py). It decides nothing. Why a stream
does not open, in installer's words, comes from drivers/rtsp_probe.py.

Capture settings, measured against the GStreamer test camera (testing/media/NOTES.md):
- FFmpeg options `rtsp_transport;tcp|analyzeduration;0|probesize;32`: first frame in 0.2 s instead of
  2.9 s, and no burst of ~3 s of stale frames after opening.
- `CAP_PROP_N_THREADS=1`: frame-threaded H.264 decoding would add (threads-1) frames of delay.
- `CAP_PROP_READ_TIMEOUT_MSEC` always: without it a hung camera blocks one read for 60 s. It cannot
  be changed after opening, and on a hang OpenCV first returns one flushed frame after the timeout,
  so a read that took longer than the timeout is treated as a stall here (detection in 1x, not 2x).
- A client joining a stream mid-GOP gets no frame before the next keyframe: reads may time out
  until then, so the first frame has its own, longer budget.
- `CAP_PROP_BUFFERSIZE` cannot be set on the FFmpeg backend: keeping only the newest frame is this
  thread's job (it must read as fast as the camera sends).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import cv2
import numpy as np

from config.models import CameraConfig
from drivers.events import CameraStatus, DriverEvent
from drivers.onvif_camera import CameraEndpoints, CameraError, resolve_stream
from drivers.rtsp_probe import diagnose_open_failure
from drivers.threaded_device import ThreadedDevice

log = logging.getLogger(__name__)

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
FFMPEG_OPTIONS = "rtsp_transport;tcp|analyzeduration;0|probesize;32"
OPEN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 2.0
FIRST_FRAME_TIMEOUT_S = 8.0  # a real camera's GOP can be several seconds; reads before the first keyframe time out
PORT_POLL_S = 1.0  # while a camera's port refuses connections, check it this often

# An operator's own FFmpeg options (set before this module was imported) are kept.
_OPERATOR_FFMPEG_OPTIONS = os.environ.get(FFMPEG_OPTIONS_ENV)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. `image` is BGR uint8 (H, W, 3) and read-only: it is shared by every consumer."""

    image: np.ndarray = field(repr=False, compare=False)
    ts: datetime  # wall clock (UTC) when the frame was read
    mono: float  # time.monotonic() when the frame was read
    seq: int  # 1, 2, ... per RtspCapture, never reset by reconnects


@dataclass(frozen=True, slots=True)
class CaptureStats:
    open_attempts: int  # VideoCapture opens tried (not counting failed ONVIF resolutions)
    sessions: int  # opens that delivered at least one frame
    frames_read: int  # frames decoded from the stream
    frames_kept: int  # frames converted to BGR and published (at most cfg.fps per second)
    last_error: str | None


# --- opening -----------------------------------------------------------------------------------


def open_capture(
    url: str, open_timeout_s: float = OPEN_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S
) -> cv2.VideoCapture | None:
    """An opened FFmpeg VideoCapture with the measured low-latency settings, or None."""
    if _OPERATOR_FFMPEG_OPTIONS is None and os.environ.get(FFMPEG_OPTIONS_ENV) != FFMPEG_OPTIONS:
        os.environ[FFMPEG_OPTIONS_ENV] = FFMPEG_OPTIONS  # read by OpenCV at every open; same value for all cameras
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(1, int(open_timeout_s * 1000)),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, max(1, int(read_timeout_s * 1000)),
        cv2.CAP_PROP_N_THREADS, 1,
    ]  # fmt: skip
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    if cap.isOpened():
        return cap
    cap.release()
    return None


def _port_open(address: tuple[str, int], timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout_s):
            return True
    except OSError:
        return False


# --- the capture thread ------------------------------------------------------------------------


class RtspCapture(ThreadedDevice):
    """Reads one camera in its own daemon thread and keeps only its newest frame.

    `emit` and `on_frame` are called from the capture thread and must not block; the gateway hands
    events to its loop (e.g. with `loop.call_soon_threadsafe`). Frames are converted to BGR at most
    `cfg.fps` times per second; the stream itself is always read at the camera's rate.
    """

    HEALTHY_AFTER_S = 5.0  # frames flowed this long: the next reconnect starts again from the shortest wait

    def __init__(
        self,
        camera_id: str,
        cfg: CameraConfig,
        emit: Callable[[DriverEvent], None],
        *,
        resolve: Callable[[CameraConfig], CameraEndpoints] = resolve_stream,
        on_frame: Callable[[Frame], None] | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        first_frame_timeout_s: float = FIRST_FRAME_TIMEOUT_S,
    ) -> None:
        backoff_max_s = max(backoff_max_s, backoff_initial_s)
        super().__init__("camera", camera_id, emit, backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s)
        self.camera_id = camera_id
        self.cfg = cfg
        self._resolve = resolve
        self._on_frame = on_frame
        self._open_timeout = open_timeout_s
        self._read_timeout = read_timeout_s
        self._first_frame_timeout = max(first_frame_timeout_s, read_timeout_s)
        self._period = 1.0 / cfg.fps
        self._cond = threading.Condition()  # guards _frame and the counters
        self._frame: Frame | None = None
        self._seq = 0
        self._endpoints: CameraEndpoints | None = None
        self._open_attempts = 0
        self._sessions = 0
        self._frames_read = 0
        self._last_error: str | None = None

    # --- public --------------------------------------------------------------------------------

    @property
    def endpoints(self) -> CameraEndpoints | None:
        """What the last successful resolution returned (device information, snapshot URI)."""
        return self._endpoints

    # stop() (ThreadedDevice) waits at most open timeout + 1 s by default. OpenCV's open and read
    # cannot be interrupted; a thread still blocked in one is a daemon and ends when that call returns.

    def latest(self) -> Frame | None:
        """The newest frame, or None before the first one. Never blocks on the camera.

        After the stream stops, this is still the last frame read: check `mono` or `online`.
        """
        with self._cond:
            return self._frame

    def wait_frame(self, after_seq: int = 0, timeout: float = 1.0) -> Frame | None:
        """The newest frame once its seq is greater than `after_seq`; None after `timeout` s or on stop()."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._frame is None or self._frame.seq <= after_seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._cond.wait(remaining)
            return self._frame

    def stats(self) -> CaptureStats:
        with self._cond:
            return CaptureStats(self._open_attempts, self._sessions, self._frames_read, self._seq, self._last_error)

    # --- capture thread ------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()  # wait_frame() callers return None at once

    def _stop_timeout(self) -> float:
        return self._open_timeout + 1.0  # the longest blocking call: an open

    def _pause(self, backoff: float) -> bool:
        """Wait `backoff` s after a failure, however fast it was: no busy loop.

        While the camera's port refuses connections (a reboot), it is polled once a second with a
        bare TCP connect, and the wait ends as soon as it accepts (True): a rebooted camera is read
        again within about a second instead of after a grown backoff. A camera whose port is open
        but whose stream fails (credentials, path) just waits out the backoff.
        """
        address = self._stream_address()
        if address is None or backoff <= PORT_POLL_S or _port_open(address):
            self._stop.wait(backoff)
            return False
        end = time.monotonic() + backoff
        while not self._stop.wait(min(PORT_POLL_S, max(0.0, end - time.monotonic()))):
            if time.monotonic() >= end:
                return False
            if _port_open(address):
                log.info("camera %s: %s:%d accepts connections again", self.camera_id, *address)
                return True
        return False

    def _stream_address(self) -> tuple[str, int] | None:
        """Host and port that must accept connections before the stream can open."""
        url = self._endpoints.stream_uri if self._endpoints is not None else self.cfg.rtsp_url
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme.lower() in ("rtsp", "rtsps") and parts.hostname:
                try:
                    return parts.hostname, parts.port or (322 if parts.scheme.lower() == "rtsps" else 554)
                except ValueError:
                    return None
        if self.cfg.onvif is not None:  # not resolved yet: the ONVIF service must answer first
            host = self.cfg.onvif.host.split("://", 1)[-1].rstrip("/")
            return host, self.cfg.onvif.port
        return None

    def _session(self) -> str:
        """Resolve, open and read until the stream fails or stop(): why it ended."""
        if self._endpoints is None:
            try:
                self._endpoints = self._resolve(self.cfg)
            except CameraError as exc:
                return str(exc)
        url = self._endpoints.stream_uri
        with self._cond:
            self._open_attempts += 1
        cap = open_capture(url, self._open_timeout, self._read_timeout)
        if cap is None:
            if self.cfg.onvif is not None:
                self._endpoints = None  # the camera may hand out another URI after a reboot: ask again
            if self._online is False:  # already reported; do not probe the camera on every retry
                return self._last_error or "RTSP: cannot open stream"
            return diagnose_open_failure(url, min(3.0, self._open_timeout))
        try:
            return self._read(cap)
        finally:
            cap.release()

    def _read(self, cap: cv2.VideoCapture) -> str:
        opened = time.monotonic()
        flowing = False  # a frame came in this session
        due: float | None = None  # when the next frame should be kept (cfg.fps)
        while not self._stop.is_set():
            started = time.monotonic()
            ok = cap.grab()
            now = time.monotonic()
            took = now - started
            if not flowing:
                if not ok:
                    if took < self._read_timeout / 2:
                        return "RTSP: stream opened but ended before the first frame"
                    if now - opened >= self._first_frame_timeout:
                        return f"RTSP: no frame within {self._first_frame_timeout:g} s of opening the stream"
                    continue  # joined mid-GOP: the first keyframe may still come
            elif not ok or took >= self._read_timeout:
                # A hung camera: OpenCV returns one flushed frame after the read timeout, then fails
                # after another; a read that took this long is already the outage.
                if ok or took >= self._read_timeout / 2:
                    return f"RTSP: no frame for {self._read_timeout:g} s (camera hung or network down)"
                return "RTSP: stream ended (the camera closed the connection)"
            with self._cond:
                self._frames_read += 1
            if not flowing:
                flowing = True
                with self._cond:
                    self._sessions += 1
                self._set_online(True)  # also starts the session's healthy clock (HEALTHY_AFTER_S)
            # Convert (the costly part after decoding) at most cfg.fps times per second.
            # Half a period of slack absorbs arrival jitter when the camera sends exactly cfg.fps;
            # after a stall the schedule restarts instead of bursting to catch up.
            if due is not None and now < due - self._period / 2:
                continue
            due = now + self._period if due is None else max(due + self._period, now + self._period * 0.75)
            ts = datetime.now(UTC) - timedelta(seconds=time.monotonic() - now)  # wall clock of the read
            ok, image = cap.retrieve()
            if not ok or image is None:
                continue
            image.flags.writeable = False
            self._publish(image, ts, now)
        return ""

    def _publish(self, image: np.ndarray, ts: datetime, mono: float) -> None:
        with self._cond:
            self._seq += 1
            frame = Frame(image=image, ts=ts, mono=mono, seq=self._seq)
            self._frame = frame
            self._cond.notify_all()
        if self._on_frame is not None:
            try:
                self._on_frame(frame)
            except Exception:  # a failing consumer must not stop the capture
                log.exception("camera %s: on_frame failed", self.camera_id)

    def _set_online(self, online: bool, error: str | None = None) -> None:
        if not online:
            with self._cond:
                self._last_error = error  # on every failed attempt, not only on the transition: stats()
        super()._set_online(online, error)

    def _status_event(self, online: bool, error: str | None) -> CameraStatus:
        return CameraStatus(camera=self.camera_id, online=online, error=error)

    def _online_detail(self) -> str:
        ep = self._endpoints
        return f"frames from {ep.stream_uri_redacted if ep else '?'}"


# --- accessgw check ----------------------------------------------------------------------------


def probe_camera(
    cfg: CameraConfig,
    timeout_s: float = 8.0,
    *,
    resolve: Callable[..., CameraEndpoints] = resolve_stream,
) -> str | None:
    """For `accessgw check`: None when one frame was read within `timeout_s`, else why not.

    E.g. "ONVIF: Sender not authorized at 192.0.2.10:80 (...)", "RTSP: 192.0.2.11:554 refused the
    connection (...)", "RTSP: no frame within 8 s".
    """
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(0.05, deadline - time.monotonic())

    try:
        endpoints = resolve(cfg, timeout_s=min(OPEN_TIMEOUT_S, left())) if cfg.onvif is not None else resolve(cfg)
    except CameraError as exc:
        return str(exc)
    url = endpoints.stream_uri
    cap = open_capture(url, left(), min(READ_TIMEOUT_S, left()))
    if cap is None:
        if deadline - time.monotonic() <= 0.05:
            return f"RTSP: stream did not open within {timeout_s:g} s"
        return diagnose_open_failure(url, min(3.0, left()))
    try:
        while time.monotonic() < deadline:
            started = time.monotonic()
            if cap.grab():
                ok, image = cap.retrieve()
                if ok and image is not None:
                    return None
            elif time.monotonic() - started < READ_TIMEOUT_S / 2:
                return "RTSP: stream opened but ended before the first frame"
        return f"RTSP: no frame within {timeout_s:g} s"
    finally:
        cap.release()
