"""Drive testing/media/rtsp_server.py (a GStreamer RTSP test camera) from pytest in the venv.

    cam = RtspCamera(initial_image=photo)     # free loopback port, waits for READY
    url = cam.url                              # rtsp://127.0.0.1:PORT/cam
    t = cam.switch(other_photo)                # server's time.monotonic() of the first new frame
    cam.stop(); cam.start()                    # same port: camera_offline and back
    cam.close()

The server runs under the SYSTEM python3 (python3-gi + gir1.2-gst-rtsp-server-1.0 from Debian),
never the venv. Its timestamps are CLOCK_MONOTONIC, the same clock as this process's
time.monotonic(), so they can be subtracted from the gateway's own monotonic stamps.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = os.environ.get("ACCESSGW_GST_PYTHON", "/usr/bin/python3")


class RtspServerError(RuntimeError):
    pass


class RtspCamera:
    def __init__(
        self,
        initial_image: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        fps: int = 10,
        width: int = 640,
        height: int = 480,
        fit: str = "scale",
        codec: str = "h264",
        keyint: int = 5,
        transports: str = "tcp",
        user: str | None = None,
        password: str | None = None,
        mount: str = "/cam",
        ready_timeout: float = 15.0,
        autostart: bool = True,
    ) -> None:
        self.image = str(initial_image) if initial_image else None
        self.port = port  # 0 until the first start; then kept so a restart reuses it
        self.mount = mount
        self.user, self.password = user, password
        self.ready_timeout = ready_timeout
        self._opts = [
            "--fps", str(fps), "--width", str(width), "--height", str(height), "--fit", fit,
            "--codec", codec, "--keyint", str(keyint), "--transports", transports, "--mount", mount,
        ]  # fmt: skip
        if user:
            self._opts += ["--user", user, "--password", password or ""]
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._lock = threading.Lock()
        self.log: list[str] = []  # every line the server printed, for failure messages
        if autostart:
            self.start()

    @property
    def url(self) -> str:
        cred = f"{self.user}:{self.password}@" if self.user else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}{self.mount}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.running:
            raise RtspServerError("already running")
        if not Path(SYSTEM_PYTHON).exists():
            raise RtspServerError(f"{SYSTEM_PYTHON} missing: the RTSP test server needs Debian's python3-gi")
        cmd = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), *self._opts]
        if self.image:
            cmd += ["--image", self.image]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self._lines = queue.Queue()
        self._stderr = []
        self._seq = 0  # the server numbers every command line it reads, from 1
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1, env=env
        )
        threading.Thread(target=self._read, args=(self.proc.stdout, self._lines), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr, self._stderr), daemon=True).start()
        line = self._expect(("READY",), self.ready_timeout)
        _, port, _url = line.split(" ", 2)
        self.port = int(port)

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> RtspCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands -----------------------------------------------------------------------------
    def switch(self, image: str | os.PathLike[str] | None, timeout: float = 10.0) -> float:
        """Show `image` (None = black). Returns the server's monotonic time of the first frame
        pushed with it (or of the next tick when no client is connected)."""
        self.image = str(image) if image else None
        line = self._command(f"switch {self.image}" if self.image else "blank", ("SWITCHED", "ERROR"), timeout)
        if line.startswith("ERROR"):
            raise RtspServerError(line)
        return float(line.split(" ")[2])

    def ping(self, timeout: float = 5.0) -> dict[str, float]:
        _, t, frames, clients = self._command("ping", ("PONG",), timeout).split(" ")
        return {"t": float(t), "frames_pushed": int(frames), "clients": int(clients)}

    # -- plumbing -----------------------------------------------------------------------------
    def _command(self, text: str, expect: tuple[str, ...], timeout: float) -> str:
        if not self.running:
            raise RtspServerError("RTSP server is not running")
        with self._lock:
            assert self.proc is not None and self.proc.stdin is not None
            self._seq += 1
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
            return self._expect(expect, timeout, self._seq if text != "ping" else None)

    def _expect(self, prefixes: tuple[str, ...], timeout: float, seq: int | None = None) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RtspServerError(f"timed out after {timeout:.1f} s waiting for {prefixes}: {self._tail()}")
            try:
                line = self._lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if line is None:
                raise RtspServerError(f"RTSP server exited: {self._tail()}")
            words = line.split(" ")
            if seq is not None and words[0] in ("SWITCHED", "ERROR") and words[1] != str(seq):
                continue  # the late answer to an earlier command that timed out
            if line.startswith(prefixes):
                return line
            if line.startswith("ERROR"):
                raise RtspServerError(line)

    def _read(self, stream: object, out: queue.Queue[str | None]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            line = line.rstrip("\n")
            self.log.append(line)
            out.put(line)
        out.put(None)

    @staticmethod
    def _drain(stream: object, out: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            out.append(line.rstrip("\n"))
            del out[:-50]

    def _tail(self) -> str:
        return f"stdout={self.log[-5:]} stderr={self._stderr[-10:]}"


if __name__ == "__main__":  # smoke test: python -m testing.media.rtsp_fixture PHOTO
    with RtspCamera(sys.argv[1] if len(sys.argv) > 1 else None) as cam:
        print(cam.url, cam.ping())
