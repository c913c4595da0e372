"""RTSP capture: one daemon thread per camera keeps the newest decoded frame and reports online/offline.

The thread resolves the camera's stream (ONVIF or a plain `rtsp_url`, drivers/onvif_camera.py), opens
it with OpenCV's FFmpeg backend and reads continuously. Only the newest frame is kept: `latest()`
returns it at once; `wait_frame()` blocks for the next one; `on_frame` sees each kept frame. It
emits `CameraStatus(online=True)` when frames flow and `CameraStatus(online=False, error=...)` when
the stream cannot be opened or stops, once per transition, and reconnects with exponential backoff
until `stop()`. It decides nothing.

Capture settings, measured against the GStreamer test camera (tests/media/NOTES.md):
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

import base64
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from config.models import CameraConfig
from drivers.events import CameraStatus, DriverEvent
from drivers.onvif_camera import CameraEndpoints, CameraError, redact_url, resolve_stream

log = logging.getLogger(__name__)

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
FFMPEG_OPTIONS = "rtsp_transport;tcp|analyzeduration;0|probesize;32"
OPEN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 2.0
FIRST_FRAME_TIMEOUT_S = 8.0  # a real camera's GOP can be several seconds; reads before the first keyframe time out
PORT_POLL_S = 1.0  # while a camera's port refuses connections, check it this often
HEALTHY_AFTER_S = 5.0  # frames flowed this long: the next reconnect starts again from the shortest wait

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


def _digest_response(user: str, password: str, realm: str, nonce: str, method: str, uri: str) -> str:
    """RFC 2617 digest without qop (what RTSP cameras use)."""
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    return hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()


def _auth_params(challenge: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in challenge.split(" ", 1)[-1].split(","):
        key, _, value = part.strip().partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return params


def _rtsp_describe(url: str, timeout_s: float) -> tuple[int, str]:
    """Send DESCRIBE (answering a Basic or Digest challenge once): (status code, reason)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 554
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        authorization = ""
        for cseq in (1, 2):
            request = f"DESCRIBE {bare} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\n{authorization}\r\n"
            sock.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            status = lines[0].split(" ", 2)
            if len(status) < 2 or not status[0].startswith("RTSP/") or not status[1].isdigit():
                raise ValueError("not an RTSP server")
            code, reason = int(status[1]), status[2] if len(status) > 2 else ""
            challenges = [ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("www-authenticate:")]
            if code != 401 or not user or cseq == 2 or not challenges:
                return code, reason
            length = next((int(ln.split(":", 1)[1]) for ln in lines[1:] if ln.lower().startswith("content-length:")), 0)
            body = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
            while len(body) < length:  # skip a 401 body so the next answer starts clean
                chunk = sock.recv(4096)
                if not chunk:
                    break
                body += chunk
            digest = next((c for c in challenges if c.lower().startswith("digest")), None)
            if digest is not None:
                p = _auth_params(digest)
                response = _digest_response(user, password, p.get("realm", ""), p.get("nonce", ""), "DESCRIBE", bare)
                authorization = (
                    f'Authorization: Digest username="{user}", realm="{p.get("realm", "")}", '
                    f'nonce="{p.get("nonce", "")}", uri="{bare}", response="{response}"\r\n'
                )
            else:
                token = base64.b64encode(f"{user}:{password}".encode()).decode()
                authorization = f"Authorization: Basic {token}\r\n"
    return code, reason


def diagnose_open_failure(url: str, timeout_s: float = 3.0) -> str:
    """Why an RTSP URL does not open, in installer's words (OpenCV only says that it did not).

    Never contains the password.
    """
    safe = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        return f"RTSP: cannot open {safe}"
    where = f"{parts.hostname}:{parts.port or 554}"
    try:
        code, reason = _rtsp_describe(url, timeout_s)
    except ConnectionRefusedError:
        return f"RTSP: {where} refused the connection (camera off or rebooting, or wrong port)"
    except TimeoutError:
        return f"RTSP: {where} did not answer within {timeout_s:g} s"
    except OSError as exc:
        return f"RTSP: cannot connect to {where}: {exc.strerror or exc}"
    except ValueError:
        return f"RTSP: {where} does not speak RTSP"
    if code == 401:
        return f"RTSP: 401 Unauthorized at {safe} (wrong or missing username/password)"
    if code == 404:
        return f"RTSP: 404 Not Found: no stream at {safe} (wrong path)"
    if code == 200:
        return f"RTSP: {safe} answers but the stream could not be opened (unsupported codec?)"
    return f"RTSP: {code} {reason} at {safe}".rstrip()


def _port_open(address: tuple[str, int], timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout_s):
            return True
    except OSError:
        return False


# --- the capture thread ------------------------------------------------------------------------


class RtspCapture:
    """Reads one camera in its own daemon thread and keeps only its newest frame.

    `emit` and `on_frame` are called from the capture thread and must not block; the gateway hands
    events to its loop (e.g. with `loop.call_soon_threadsafe`). Frames are converted to BGR at most
    `cfg.fps` times per second; the stream itself is always read at the camera's rate.
    """

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
        self.camera_id = camera_id
        self.cfg = cfg
        self._emit = emit
        self._resolve = resolve
        self._on_frame = on_frame
        self._backoff_initial = backoff_initial_s
        self._backoff_max = max(backoff_max_s, backoff_initial_s)
        self._open_timeout = open_timeout_s
        self._read_timeout = read_timeout_s
        self._first_frame_timeout = max(first_frame_timeout_s, read_timeout_s)
        self._period = 1.0 / cfg.fps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()  # guards _frame and the counters
        self._frame: Frame | None = None
        self._seq = 0
        self._online: bool | None = None  # None until the first attempt ends either way
        self._endpoints: CameraEndpoints | None = None
        self._open_attempts = 0
        self._sessions = 0
        self._frames_read = 0
        self._last_error: str | None = None

    # --- public --------------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return bool(self._online)

    @property
    def endpoints(self) -> CameraEndpoints | None:
        """What the last successful resolution returned (device information, snapshot URI)."""
        return self._endpoints

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            if not self._stop.is_set():
                return  # already running
            self._thread.join(self._open_timeout + 1.0)  # a thread that outlived stop(): never two readers
            if self._thread.is_alive():
                raise RuntimeError(f"camera {self.camera_id}: the previous capture thread is still blocked")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread. Waits at most `timeout` s (default: open timeout + 1 s, the longest blocking call).

        OpenCV's open and read cannot be interrupted; a thread still blocked in one after `timeout`
        is a daemon and exits, releasing the stream, as soon as that call returns.
        """
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(self._open_timeout + 1.0 if timeout is None else timeout)
            if thread.is_alive():
                log.error("camera %s: capture thread did not stop in time", self.camera_id)
            else:
                self._thread = None

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

    def _run(self) -> None:
        backoff = self._backoff_initial
        while not self._stop.is_set():
            try:
                error, online_for = self._session()
            except Exception as exc:  # a driver bug must not end the thread for good
                log.exception("camera %s: unexpected error", self.camera_id)
                error, online_for = f"{type(exc).__name__}: {exc}", 0.0
            if self._stop.is_set():
                break
            self._set_online(False, error)
            if online_for >= HEALTHY_AFTER_S:
                backoff = self._backoff_initial  # it worked for a while: this is a new outage
            if self._wait_before_retry(backoff):
                backoff = self._backoff_initial  # the camera is back (rebooted): start over from the shortest wait
            else:
                backoff = min(backoff * 2, self._backoff_max)
        log.debug("camera %s: capture thread stopped", self.camera_id)

    def _wait_before_retry(self, backoff: float) -> bool:
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

    def _session(self) -> tuple[str, float]:
        """Resolve, open and read until the stream fails or stop(): (why it ended, seconds it was online)."""
        if self._endpoints is None:
            try:
                self._endpoints = self._resolve(self.cfg)
            except CameraError as exc:
                return str(exc), 0.0
        url = self._endpoints.stream_uri
        with self._cond:
            self._open_attempts += 1
        cap = open_capture(url, self._open_timeout, self._read_timeout)
        if cap is None:
            if self.cfg.onvif is not None:
                self._endpoints = None  # the camera may hand out another URI after a reboot: ask again
            if self._online is False:  # already reported; do not probe the camera on every retry
                return self._last_error or "RTSP: cannot open stream", 0.0
            return diagnose_open_failure(url, min(3.0, self._open_timeout)), 0.0
        try:
            return self._read(cap)
        finally:
            cap.release()

    def _read(self, cap: cv2.VideoCapture) -> tuple[str, float]:
        opened = time.monotonic()
        online_since: float | None = None
        due: float | None = None  # when the next frame should be kept (cfg.fps)
        while not self._stop.is_set():
            started = time.monotonic()
            ok = cap.grab()
            now = time.monotonic()
            took = now - started
            online_for = 0.0 if online_since is None else now - online_since
            if online_since is None:
                if not ok:
                    if took < self._read_timeout / 2:
                        return "RTSP: stream opened but ended before the first frame", 0.0
                    if now - opened >= self._first_frame_timeout:
                        return f"RTSP: no frame within {self._first_frame_timeout:g} s of opening the stream", 0.0
                    continue  # joined mid-GOP: the first keyframe may still come
            elif not ok or took >= self._read_timeout:
                # A hung camera: OpenCV returns one flushed frame after the read timeout, then fails
                # after another; a read that took this long is already the outage.
                if ok or took >= self._read_timeout / 2:
                    return f"RTSP: no frame for {self._read_timeout:g} s (camera hung or network down)", online_for
                return "RTSP: stream ended (the camera closed the connection)", online_for
            with self._cond:
                self._frames_read += 1
            if online_since is None:
                online_since = now
                with self._cond:
                    self._sessions += 1
                self._set_online(True)
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
        return "", 0.0

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
                self._last_error = error
        if self._online == online:
            return  # once per transition, not on every retry
        self._online = online
        if online:
            ep = self._endpoints
            log.info("camera %s: frames from %s", self.camera_id, ep.stream_uri_redacted if ep else "?")
        else:
            log.warning("camera %s: offline: %s", self.camera_id, error)
        try:
            self._emit(CameraStatus(camera=self.camera_id, online=online, error=None if online else error))
        except Exception:  # a failing consumer must not stop the capture
            log.exception("camera %s: emit failed", self.camera_id)


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
