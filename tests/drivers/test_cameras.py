"""Camera drivers against real peers on 127.0.0.1: the GStreamer RTSP test camera and ipycam's ONVIF service.

Every wait is bounded; every server and capture thread is stopped in teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import cv2
import numpy as np
import pytest

from config.models import CameraConfig
from drivers.events import CameraStatus
from drivers.onvif_camera import CameraError, redact_url, resolve_stream, with_credentials, wsdl_dir
from drivers.rtsp_capture import Frame, RtspCapture, probe_camera
from drivers.rtsp_probe import diagnose_open_failure
from drivers.snapshots import encode_jpeg
from testing.media.onvif_fixture import OnvifCamera
from testing.media.rtsp_fixture import RtspCamera
from testing.peers import free_port
from tests.drivers.camera_support import (
    REPO,
    SilentServer,
    letterboxed,
    photo,
    process_cpu_s,
    shows,
)
from tests.drivers.support import Events, wait_until

PASSWORD = "p@ss:w/rd %"  # every character that must be URL-quoted in an RTSP URL


def status(online: bool) -> Callable[[object], bool]:
    return lambda e: isinstance(e, CameraStatus) and e.online is online


def onvif_cfg(port: int, *, password: str = PASSWORD, profile: int = 0, username: str = "admin") -> CameraConfig:
    return CameraConfig(
        id="c1",
        onvif={"host": "127.0.0.1", "port": port, "username": username, "password": password, "profile": profile},
    )


def without_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.rpartition('@')[2]}"


@pytest.fixture(scope="module")
def pictures() -> dict[str, Any]:
    """Two real photos whose frames are easy to tell apart (bright and dark), with their reference renderings."""
    paths = {"agassi": photo("Andre_Agassi"), "ashcroft": photo("John_Ashcroft")}
    refs = {name: letterboxed(path) for name, path in paths.items()}
    assert abs(float(refs["agassi"].mean()) - float(refs["ashcroft"].mean())) > 30
    return {"paths": paths, "refs": refs}


@pytest.fixture
def rtsp() -> Iterator[Callable[..., RtspCamera]]:
    servers: list[RtspCamera] = []

    def make(image: Any = None, **kwargs: Any) -> RtspCamera:
        server = RtspCamera(image, **kwargs)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            if server.proc is not None:
                try:
                    server.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
                except ProcessLookupError:
                    pass
            server.close()


@pytest.fixture
def onvif() -> Iterator[Callable[..., OnvifCamera]]:
    cams: list[OnvifCamera] = []

    def make(rtsp_port: int, **kwargs: Any) -> OnvifCamera:
        cam = OnvifCamera(rtsp_port, **kwargs)
        cams.append(cam)
        return cam

    try:
        yield make
    finally:
        for cam in cams:
            cam.stop()


@pytest.fixture
def capture(events: Events) -> Iterator[Callable[..., RtspCapture]]:
    captures: list[RtspCapture] = []

    def make(cfg: CameraConfig, **kwargs: Any) -> RtspCapture:
        cap = RtspCapture(cfg.id, cfg, events, **kwargs)
        captures.append(cap)
        cap.start()
        return cap

    try:
        yield make
    finally:
        for cap in captures:
            cap.stop(timeout=8)


# --- ONVIF ---------------------------------------------------------------------------------------


def test_resolve_via_onvif_reads_device_info_and_uris(rtsp, onvif) -> None:
    server = rtsp()
    cam = onvif(
        server.port, username="admin", password=PASSWORD, manufacturer="Acme", model="Door-Cam 3", serial_number="SN42"
    )
    cam.set_snapshot(letterboxed(photo("Hans_Blix")))

    ep = resolve_stream(onvif_cfg(cam.port))

    assert (ep.manufacturer, ep.model, ep.serial) == ("Acme", "Door-Cam 3", "SN42")
    assert ep.firmware  # ipycam's version
    assert ep.profile_token == "Profile_Main"
    assert without_credentials(ep.stream_uri) == server.url == cam.stream_uri
    assert ep.stream_uri == f"rtsp://admin:p%40ss%3Aw%2Frd%20%25@127.0.0.1:{server.port}/cam"  # quoted credentials
    assert ep.snapshot_uri == cam.snapshot_uri
    assert PASSWORD not in repr(ep) and "p%40ss" not in repr(ep)
    assert ep.stream_uri_redacted == f"rtsp://admin:***@127.0.0.1:{server.port}/cam"


def test_resolve_uses_the_configured_profile_index(rtsp, onvif) -> None:
    server = rtsp()
    cam = onvif(server.port, username="admin", password=PASSWORD)
    cam.config.sub_stream_name = "sub"  # ipycam serves Profile_Sub's URI from this name

    ep = resolve_stream(onvif_cfg(cam.port, profile=1))

    assert ep.profile_token == "Profile_Sub"
    assert without_credentials(ep.stream_uri) == f"rtsp://127.0.0.1:{server.port}/sub"


def test_resolve_with_a_wrong_password_says_not_authorized(rtsp, onvif) -> None:
    cam = onvif(rtsp().port, username="admin", password=PASSWORD)
    with pytest.raises(CameraError, match=r"^ONVIF: Sender not authorized at 127\.0\.0\.1:\d+ \(wrong username") as err:
        resolve_stream(onvif_cfg(cam.port, password="wrong-secret"))
    assert "wrong-secret" not in str(err.value)


def test_resolve_with_a_profile_index_out_of_range(rtsp, onvif) -> None:
    cam = onvif(rtsp().port, username="admin", password=PASSWORD)
    with pytest.raises(CameraError, match=r"profile index 2 is out of range: .* has 2 profile\(s\) \[0: Profile_Main"):
        resolve_stream(onvif_cfg(cam.port, profile=2))


def test_resolve_when_the_camera_gives_no_stream_uri(rtsp, onvif) -> None:
    cam = onvif(rtsp().port, username="admin", password=PASSWORD)
    service = cam.camera.onvif  # the real SOAP service, answering an empty <tt:Uri/>
    service.get_stream_uri = lambda body: service._wrap_envelope(service._render("get_stream_uri", stream_uri=""))
    with pytest.raises(CameraError, match=r"returned no stream URI for profile 0 \(Profile_Main\)"):
        resolve_stream(onvif_cfg(cam.port))


def test_resolve_an_unreachable_camera() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(CameraError, match=rf"^ONVIF: 127\.0\.0\.1:{port} unreachable: connection refused$"):
        resolve_stream(onvif_cfg(port))
    assert time.monotonic() - started < 2


def test_resolve_is_bounded_by_its_timeout_on_a_silent_camera() -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(CameraError, match=r"unreachable: no answer within 1 s"):
            resolve_stream(onvif_cfg(silent.port), timeout_s=1.0)
        assert time.monotonic() - started < 3


def test_plain_rtsp_url_is_returned_as_is() -> None:
    ep = resolve_stream(CameraConfig(id="c2", rtsp_url="rtsp://192.0.2.11/stream1"))
    assert ep.stream_uri == "rtsp://192.0.2.11/stream1"
    assert (ep.snapshot_uri, ep.manufacturer, ep.profile_token) == (None, None, None)


def test_url_helpers() -> None:
    assert with_credentials("rtsp://h:554/a", "ad min", "p@w") == "rtsp://ad%20min:p%40w@h:554/a"
    assert with_credentials("rtsp://u:x@h/a", "admin", "pw") == "rtsp://u:x@h/a"  # the camera's own win
    assert with_credentials("http://h/a", "admin", "pw") == "http://h/a"
    assert with_credentials("rtsp://h/a", None, "pw") == "rtsp://h/a"
    assert redact_url("rtsp://u:p%40w@h:554/a") == "rtsp://u:***@h:554/a"
    assert redact_url("rtsp://h/a") == "rtsp://h/a"


def test_wsdl_dir_is_found_from_the_installed_package() -> None:
    assert (wsdl_dir() / "devicemgmt.wsdl").is_file() and (wsdl_dir() / "media.wsdl").is_file()


def test_importing_onvif_leaves_the_root_logger_alone() -> None:
    code = (
        "import logging; from drivers.onvif_camera import wsdl_dir; wsdl_dir(); import onvif; r = logging.getLogger(); "
        "assert 'onvif' in __import__('sys').modules; print(len(r.handlers), r.level)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "30"]  # no handler added, level still WARNING


# --- RTSP capture --------------------------------------------------------------------------------


def test_capture_keeps_the_newest_frame_and_sees_a_switch(rtsp, capture, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"], fps=10)
    seen: list[Frame] = []
    started = time.monotonic()
    cap = capture(CameraConfig(id="c1", rtsp_url=server.url, fps=10), on_frame=seen.append)

    events.wait(status(True), timeout=5)
    first = cap.wait_frame(0, timeout=5)
    assert first is not None and time.monotonic() - started < 3
    assert first.image.shape == (480, 640, 3) and first.image.dtype == np.uint8
    assert not first.image.flags.writeable  # shared by every consumer
    assert first.ts.tzinfo is UTC and first.mono >= started
    assert shows(first.image, pictures["refs"]) == "agassi"

    t_push = server.switch(pictures["paths"]["ashcroft"])
    changed = wait_until(
        lambda: next((f for f in list(seen) if shows(f.image, pictures["refs"]) == "ashcroft"), None),
        timeout=3,
        interval=0.02,
        what="a frame showing the switched picture",
    )
    latency = changed.mono - t_push
    assert 0 < latency < 1.0, latency  # measured ~0.12 s at 10 fps (one H.264 frame of parser delay)

    newest = cap.latest()
    assert newest is not None and newest.seq >= changed.seq
    assert shows(newest.image, pictures["refs"]) == "ashcroft"
    assert [f.seq for f in seen] == list(range(1, len(seen) + 1))
    assert cap.latest() is cap.latest()  # non-blocking read of a kept reference, no copy
    assert len(events.of(CameraStatus)) == 1  # status only on transitions


def test_camera_reboot_goes_offline_and_comes_back_without_a_new_capture(rtsp, capture, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"])
    cap = capture(CameraConfig(id="c1", rtsp_url=server.url))
    events.wait(status(True), timeout=5)
    assert cap.wait_frame(0, timeout=5) is not None

    mark = events.mark()
    stopped = time.monotonic()
    server.stop()
    offline = events.wait(status(False), timeout=5, after=mark)
    assert "stream ended" in offline.error
    assert time.monotonic() - stopped < 5
    last = cap.latest()
    assert last is not None and not cap.online  # the last frame stays readable; its age tells

    mark = events.mark()
    server.start()  # same port, new process: a rebooted camera
    server.switch(pictures["paths"]["ashcroft"])
    events.wait(status(True), timeout=10, after=mark)
    fresh = cap.wait_frame(last.seq, timeout=5)
    assert fresh is not None and fresh.seq > last.seq
    wait_until(lambda: shows(cap.latest().image, pictures["refs"]) == "ashcroft", timeout=3, what="frames after reboot")
    assert cap.stats().sessions == 2
    assert [e.online for e in events.of(CameraStatus)] == [True, False, True]


def test_a_long_reboot_is_noticed_without_waiting_out_a_grown_backoff(rtsp, capture, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"])
    cap = capture(CameraConfig(id="c1", rtsp_url=server.url), backoff_initial_s=2.0, backoff_max_s=30)
    events.wait(status(True), timeout=5)
    mark = events.mark()
    server.stop()
    events.wait(status(False), timeout=5, after=mark)
    time.sleep(3.5)  # retries at +2 s (refused), next one due at +6 s
    attempts = cap.stats().open_attempts
    mark = events.mark()
    server.start()
    back = time.monotonic()
    events.wait(status(True), timeout=10, after=mark)
    assert time.monotonic() - back < 2.0  # the port poll (1 s), not the 4 s backoff
    assert cap.stats().open_attempts == attempts + 1  # polling the port is not reopening the stream


def test_a_closed_port_is_offline_with_a_clear_error_and_no_busy_loop(capture, events) -> None:
    port = free_port()
    cpu0 = process_cpu_s()
    cap = capture(
        CameraConfig(id="c1", rtsp_url=f"rtsp://127.0.0.1:{port}/cam"), backoff_initial_s=0.1, backoff_max_s=0.4
    )
    offline = events.wait(status(False), timeout=5)
    assert offline.error == f"RTSP: 127.0.0.1:{port} refused the connection (camera off or rebooting, or wrong port)"
    time.sleep(2.0)
    attempts = cap.stats().open_attempts
    assert 3 <= attempts <= 9, attempts  # 0.1, 0.2, 0.4, 0.4, ... s apart
    assert process_cpu_s() - cpu0 < 0.5
    assert len(events.of(CameraStatus)) == 1  # one transition, not one event per retry
    started = time.monotonic()
    cap.stop()
    assert time.monotonic() - started < 1


def test_a_hung_camera_is_detected_by_the_read_timeout(rtsp, capture, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"])
    assert server.proc is not None
    cap = capture(CameraConfig(id="c1", rtsp_url=server.url), read_timeout_s=1.0)
    events.wait(status(True), timeout=5)
    mark = events.mark()
    frozen = time.monotonic()
    server.proc.send_signal(signal.SIGSTOP)  # the TCP connection stays open, nothing flows
    try:
        offline = events.wait(status(False), timeout=5, after=mark)
        assert "no frame for 1 s" in offline.error
        assert time.monotonic() - frozen < 2.5  # one read timeout, not two
    finally:
        server.proc.send_signal(signal.SIGCONT)
    events.wait(status(True), timeout=15, after=mark)
    assert cap.wait_frame(cap.latest().seq, timeout=5) is not None


def test_capture_through_onvif_with_quoted_rtsp_credentials(rtsp, onvif, capture, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"], user="admin", password=PASSWORD)  # RTSP Basic auth
    cam = onvif(server.port, username="admin", password=PASSWORD)
    cap = capture(onvif_cfg(cam.port))
    events.wait(status(True), timeout=5)
    frame = cap.wait_frame(0, timeout=5)
    assert frame is not None and shows(frame.image, pictures["refs"]) == "agassi"
    assert cap.endpoints is not None and cap.endpoints.profile_token == "Profile_Main"


def test_wrong_rtsp_credentials_are_reported_without_the_password(rtsp, capture, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"], user="admin", password=PASSWORD)
    capture(CameraConfig(id="c1", rtsp_url=f"rtsp://admin:not-it@127.0.0.1:{server.port}/cam"))
    offline = events.wait(status(False), timeout=5)
    assert offline.error.startswith("RTSP: 401 Unauthorized at rtsp://admin:***@127.0.0.1:")
    assert "not-it" not in offline.error


def test_onvif_failure_is_reported_as_offline(rtsp, onvif, capture, events) -> None:
    cam = onvif(rtsp().port, username="admin", password=PASSWORD)
    capture(onvif_cfg(cam.port, password="wrong"))
    offline = events.wait(status(False), timeout=5)
    assert offline.error.startswith("ONVIF: Sender not authorized")


def test_fps_limits_the_frames_kept_not_the_frames_read(rtsp, capture, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"], fps=10)
    cap = capture(CameraConfig(id="c1", rtsp_url=server.url, fps=2))
    events.wait(status(True), timeout=5)
    before = cap.stats()
    time.sleep(2.0)
    after = cap.stats()
    read, kept = after.frames_read - before.frames_read, after.frames_kept - before.frames_kept
    assert 16 <= read <= 22, read
    assert 3 <= kept <= 5, kept


def test_a_failing_consumer_does_not_stop_the_capture(rtsp, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"])

    def explode(_: object) -> None:
        raise RuntimeError("consumer bug")

    cap = RtspCapture("c1", CameraConfig(id="c1", rtsp_url=server.url), explode, on_frame=explode)
    cap.start()
    try:
        first = cap.wait_frame(0, timeout=5)
        assert first is not None
        assert cap.wait_frame(first.seq + 3, timeout=3) is not None
    finally:
        cap.stop()


def test_capture_cpu_at_10_fps_is_small(rtsp, capture, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"], fps=10)
    cap = capture(CameraConfig(id="c1", rtsp_url=server.url, fps=10))
    events.wait(status(True), timeout=5)
    cap.wait_frame(0, timeout=5)
    cpu0, t0 = process_cpu_s(), time.monotonic()
    time.sleep(3.0)
    share = (process_cpu_s() - cpu0) / (time.monotonic() - t0)
    assert share < 0.25, f"capture at 10 fps used {share:.0%} of a core"


def test_stop_is_prompt_while_waiting_to_reconnect(capture, events) -> None:
    cap = capture(CameraConfig(id="c1", rtsp_url=f"rtsp://127.0.0.1:{free_port()}/cam"), backoff_initial_s=20)
    events.wait(status(False), timeout=5)
    started = time.monotonic()
    cap.stop()
    assert time.monotonic() - started < 0.5
    assert cap.wait_frame(0, timeout=0.1) is None


def test_a_stopped_capture_can_be_started_again(rtsp, capture, events, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"])
    cap = capture(CameraConfig(id="c1", rtsp_url=server.url))
    first = cap.wait_frame(0, timeout=5)
    assert first is not None
    cap.stop()
    cap.start()
    assert cap.wait_frame(first.seq + 2, timeout=5) is not None
    assert [e.online for e in events.of(CameraStatus)] == [True]  # stop() is not an outage


# --- probe (accessgw check) ----------------------------------------------------------------------


def test_probe_ok_for_rtsp_url_and_onvif(rtsp, onvif, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"])
    assert probe_camera(CameraConfig(id="c1", rtsp_url=server.url)) is None
    cam = onvif(server.port, username="admin", password=PASSWORD)
    assert probe_camera(onvif_cfg(cam.port)) is None


def test_probe_failures_say_why(rtsp, onvif, pictures) -> None:
    server = rtsp(pictures["paths"]["agassi"], user="admin", password=PASSWORD)
    cam = onvif(server.port, username="admin", password=PASSWORD)
    assert probe_camera(onvif_cfg(cam.port, password="wrong")).startswith("ONVIF: Sender not authorized")
    port = free_port()
    assert probe_camera(CameraConfig(id="c1", rtsp_url=f"rtsp://127.0.0.1:{port}/cam")) == (
        f"RTSP: 127.0.0.1:{port} refused the connection (camera off or rebooting, or wrong port)"
    )
    wrong_path = with_credentials(f"rtsp://127.0.0.1:{server.port}/nope", "admin", PASSWORD)
    assert probe_camera(CameraConfig(id="c1", rtsp_url=wrong_path)).startswith("RTSP: 404 Not Found")


def test_probe_is_bounded_on_a_silent_camera() -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        why = probe_camera(CameraConfig(id="c1", rtsp_url=f"rtsp://127.0.0.1:{silent.port}/cam"), timeout_s=2)
        assert why == "RTSP: stream did not open within 2 s"
        assert time.monotonic() - started < 3.5


def test_digest_answer_matches_urllibs_implementation() -> None:
    from urllib.request import AbstractDigestAuthHandler, HTTPPasswordMgr, Request

    from drivers.rtsp_probe import _digest_response

    passwords = HTTPPasswordMgr()
    passwords.add_password("cam", "http://h/dir/index.html", "Mufasa", "Circle Of Life")
    challenge = {"realm": "cam", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093"}
    header = AbstractDigestAuthHandler(passwords).get_authorization(Request("http://h/dir/index.html"), challenge)
    expected = header.split('response="', 1)[1].split('"', 1)[0]
    assert _digest_response("Mufasa", "Circle Of Life", "cam", challenge["nonce"], "GET", "/dir/index.html") == expected


def test_diagnose_without_rtsp() -> None:
    assert diagnose_open_failure("http://127.0.0.1:1/x") == "RTSP: cannot open http://127.0.0.1:1/x"


# --- snapshots -----------------------------------------------------------------------------------


def test_encode_jpeg_round_trips_a_real_photo() -> None:
    image = cv2.imread(str(photo("Hans_Blix")))
    data = encode_jpeg(image)
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == image.shape
    assert np.abs(decoded.astype(int) - image.astype(int)).mean() < 6


def test_encode_jpeg_scales_wide_frames_and_keeps_the_aspect() -> None:
    image = cv2.resize(letterboxed(photo("Hans_Blix")), (1920, 1440))
    decoded = cv2.imdecode(np.frombuffer(encode_jpeg(image), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (960, 1280, 3)
    unscaled = cv2.imdecode(np.frombuffer(encode_jpeg(image, max_width=None), np.uint8), cv2.IMREAD_COLOR)
    assert unscaled.shape == (1440, 1920, 3)
    assert len(encode_jpeg(image, quality=30)) < len(encode_jpeg(image, quality=95))


def test_encode_jpeg_takes_read_only_and_grey_frames_and_rejects_nonsense() -> None:
    image = letterboxed(photo("Hans_Blix"))
    image.flags.writeable = False
    assert cv2.imdecode(np.frombuffer(encode_jpeg(image), np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert cv2.imdecode(np.frombuffer(encode_jpeg(grey), np.uint8), cv2.IMREAD_UNCHANGED).shape == (480, 640)
    for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError):
            encode_jpeg(bad)
    with pytest.raises(ValueError):
        encode_jpeg(image, quality=0)


def test_faces_dir_is_required() -> None:
    code = "from tests.drivers.camera_support import faces_dir; faces_dir()"
    env = {**os.environ, "ACCESSGW_FACES_DIR": "/nonexistent/faces"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "face photos not found at /nonexistent/faces" in out.stderr
