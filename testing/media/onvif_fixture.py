"""An ONVIF test camera: ipycam's SOAP service pinned to 127.0.0.1, WS-Discovery off.

ipycam's own IPCamera.start() binds the HTTP/ONVIF server on all interfaces (''), joins the
WS-Discovery multicast group on UDP 3702 and probes for go2rtc/FFmpeg, so it is NOT called.
Only the pieces that answer ONVIF are used: IPCamera(config) (constructor only: PTZ model,
ONVIFService with its SOAP templates, an idle recorder) behind ipycam's own
IPCameraHTTPHandler on a loopback ThreadingTCPServer.

The advertised stream URI is ``rtsp://{local_ip}:{rtsp_port}/{main_stream_name}``, so with
local_ip=127.0.0.1, rtsp_port=<RtspCamera.port> and main_stream_name="cam" it is exactly the
GStreamer test camera's URL (testing/media/rtsp_fixture.py). Both profiles (Profile_Main,
Profile_Sub) point at it. The snapshot URI is http://127.0.0.1:{onvif_port}/snapshot.jpg and
serves the last frame given to ``set_snapshot`` (HTTP Basic auth when credentials are set).

Needs (in the venv): ``pip install --no-deps ipycam`` plus numpy and opencv-python-headless
(ipycam declares the GUI opencv-python; headless works the same for it).

    with RtspCamera(photo) as rtsp, OnvifCamera(rtsp.port, username="admin", password="pw") as onvif:
        cam = ONVIFCamera("127.0.0.1", onvif.port, "admin", "pw")   # onvif-zeep
"""

from __future__ import annotations

import socketserver
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from ipycam.camera import IPCamera
from ipycam.config import CameraConfig
from ipycam.http import IPCameraHTTPHandler


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class OnvifCamera:
    def __init__(
        self,
        rtsp_port: int,
        *,
        mount: str = "cam",
        username: str = "admin",
        password: str = "secret",
        port: int = 0,
        width: int = 640,
        height: int = 480,
        fps: int = 10,
        autostart: bool = True,
        **identity: Any,
    ) -> None:
        self.port = port
        self.config = CameraConfig(
            local_ip="127.0.0.1",  # set explicitly: the default probes the default route
            onvif_port=port,
            rtsp_port=rtsp_port,
            main_stream_name=mount.lstrip("/"),
            sub_stream_name=mount.lstrip("/"),
            main_width=width,
            main_height=height,
            main_fps=fps,
            sub_width=width,
            sub_height=height,
            sub_fps=fps,
            username=username,
            password=password,
            show_timestamp=False,
            **identity,  # name=, manufacturer=, model=, serial_number=, firmware_version=
        )
        self.camera = IPCamera(self.config)  # constructor only: no sockets, no threads
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        if autostart:
            self.start()

    @property
    def stream_uri(self) -> str:
        return self.config.main_stream_rtsp

    @property
    def snapshot_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.config.snapshot_url}"

    def start(self) -> None:
        # The handler reads its camera from a class attribute: subclass it per instance.
        handler = type("Handler", (IPCameraHTTPHandler,), {"camera": self.camera})
        self._server = _Server(("127.0.0.1", self.port), handler)
        self.port = self.config.onvif_port = self._server.server_address[1]  # XAddrs use it
        self._thread = threading.Thread(target=self._server.serve_forever, name="onvif", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def set_snapshot(self, image: str | Path | np.ndarray) -> None:
        """The frame served at the snapshot URI (a BGR array or an image file)."""
        frame = cv2.imread(str(image)) if not isinstance(image, np.ndarray) else image
        if frame is None:
            raise ValueError(f"cannot read {image}")
        with self.camera._last_frame_lock:  # IPCamera.stream() would also pace to fps
            self.camera._last_frame = frame

    def __enter__(self) -> OnvifCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
