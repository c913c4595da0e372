#!/usr/bin/python3
"""A one-mount RTSP test camera whose picture can be switched at run time.

Run with the SYSTEM python3 (Debian's python3-gi + GStreamer RTSP server), not the venv:

    /usr/bin/python3 testing/media/rtsp_server.py --port 0 --image face.jpg

It serves rtsp://127.0.0.1:PORT/cam (loopback only; RTP over TCP interleaved by default,
``--transports tcp,udp`` also offers UDP with ports bound on 127.0.0.1). Frames are raw I420
pushed into an appsrc at ``--fps`` by a clock-driven thread, then H.264 (x264enc, zerolatency,
ultrafast, short GOP) or MJPEG. The still picture is a file decoded by GStreamer itself
(decodebin: JPEG, PNG, ...) and letterboxed (``--fit scale``) or centred unscaled
(``--fit center``) on a black WxH canvas; no Pillow or numpy needed.

Protocol, one line each way (stdout is line-buffered):
  server -> READY <port> <url>                              once listening
  stdin  -> switch <path>   | blank   | ping   | quit
  server -> SWITCHED <seq> <t_mono> <clients> <path>        when the FIRST frame with the new
                                                            picture was pushed (t_mono is
                                                            time.monotonic() = CLOCK_MONOTONIC,
                                                            comparable across processes)
  server -> PONG <t_mono> <frames_pushed> <clients>
  server -> ERROR <seq> <message>                           bad image / bad command
EOF on stdin ends the server (so it dies with its parent); so do SIGTERM and SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtsp, GstRtspServer  # noqa: E402

_print_lock = threading.Lock()


def say(*parts: object) -> None:
    with _print_lock:
        sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
        sys.stdout.flush()


def decode_image(path: str, width: int, height: int, fit: str) -> bytes:
    """Decode any image GStreamer can read into one I420 WxH frame on a black canvas."""
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    if fit == "scale":  # keep aspect ratio, fill the height or width, black borders
        place = "videoscale add-borders=true"
    else:  # centre without scaling (crop if larger than the canvas)
        place = "videobox autocrop=true fill=black"
    desc = (
        f"filesrc name=f ! decodebin ! videoconvert ! {place} ! videoconvert ! "
        f"video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=1/1 ! "
        "appsink name=sink sync=false max-buffers=1"
    )
    pipe = Gst.parse_launch(desc)
    pipe.get_by_name("f").set_property("location", path)
    sink = pipe.get_by_name("sink")
    pipe.set_state(Gst.State.PLAYING)
    try:
        bus = pipe.get_bus()
        deadline = time.monotonic() + 5.0
        while (sample := sink.try_pull_sample(20 * Gst.MSECOND)) is None:
            msg = bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.EOS)
            if msg is not None or time.monotonic() > deadline:
                err = "no frame decoded"
                if msg is not None and msg.type == Gst.MessageType.ERROR:
                    err = msg.parse_error()[0].message
                raise ValueError(f"cannot decode {path}: {err}")
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        try:
            data = bytes(info.data)
        finally:
            buf.unmap(info)
    finally:
        pipe.set_state(Gst.State.NULL)
    expected = width * height * 3 // 2
    if len(data) != expected:
        raise ValueError(f"decoded frame has {len(data)} bytes, expected {expected}")
    return data


def blank_frame(width: int, height: int) -> bytes:
    return bytes([16]) * (width * height) + bytes([128]) * (width * height // 2)


class Camera:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.frame = blank_frame(args.width, args.height)
        self.pending: tuple[int, str] | None = None  # (seq, path) waiting for its first push
        self.lock = threading.Lock()
        self.sources: list[GstApp.AppSrc] = []
        self.frames_pushed = 0
        self.stop = threading.Event()

    # -- RTSP side ----------------------------------------------------------------------------
    def launch_string(self) -> str:
        a = self.args
        caps = f"video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1"
        src = (
            f'appsrc name=src is-live=true do-timestamp=true format=time caps="{caps}" '
            "max-buffers=2 leaky-type=downstream"
        )
        if a.codec == "h264":
            enc = (
                f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={a.keyint} bframes=0 "
                f"threads=1 bitrate={a.bitrate} ! video/x-h264,profile=constrained-baseline ! "
                "rtph264pay name=pay0 pt=96 config-interval=-1"
            )
        else:
            enc = f"jpegenc quality={a.jpeg_quality} ! rtpjpegpay name=pay0 pt=26"
        return f"( {src} ! queue max-size-buffers=2 leaky=downstream ! {enc} )"

    def on_media_configure(self, factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        with self.lock:
            self.sources.append(appsrc)
        media.connect("unprepared", self.on_media_unprepared, appsrc)

    def on_media_unprepared(self, media: GstRtspServer.RTSPMedia, appsrc: GstApp.AppSrc) -> None:
        with self.lock:
            if appsrc in self.sources:
                self.sources.remove(appsrc)

    # -- frame pump ---------------------------------------------------------------------------
    def pump(self) -> None:
        period = 1.0 / self.args.fps
        next_t = time.monotonic()
        while not self.stop.is_set():
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()  # fell behind: do not burst
            with self.lock:
                frame, pending, sources = self.frame, self.pending, list(self.sources)
                self.pending = None
            pushed = 0
            t_push = time.monotonic()
            for appsrc in sources:
                # Only a PLAYING pipeline gets frames (a prerolling one would queue stale ones).
                if appsrc.get_state(0)[1] != Gst.State.PLAYING:
                    continue
                buf = Gst.Buffer.new_wrapped(frame)
                buf.duration = int(Gst.SECOND * period)
                if appsrc.emit("push-buffer", buf) == Gst.FlowReturn.OK:
                    pushed += 1
            if pushed:
                self.frames_pushed += 1
            if pending is not None:
                if pushed or not sources:
                    # Pushed to every playing client (or no client at all: nothing to wait for).
                    say("SWITCHED", pending[0], f"{t_push:.6f}", pushed, pending[1])
                else:  # clients exist but none is playing yet: report on the next push
                    with self.lock:
                        if self.pending is None:
                            self.pending = pending

    # -- commands -----------------------------------------------------------------------------
    def commands(self, loop: GLib.MainLoop) -> None:
        seq = 0
        for raw in sys.stdin:
            line = raw.strip()
            if not line:
                continue
            seq += 1
            cmd, _, arg = line.partition(" ")
            try:
                if cmd == "switch":
                    frame = decode_image(arg, self.args.width, self.args.height, self.args.fit)
                elif cmd == "blank":
                    frame, arg = blank_frame(self.args.width, self.args.height), "blank"
                elif cmd == "ping":
                    with self.lock:
                        n = len(self.sources)
                    say("PONG", f"{time.monotonic():.6f}", self.frames_pushed, n)
                    continue
                elif cmd == "quit":
                    break
                else:
                    raise ValueError(f"unknown command {cmd!r}")
            except ValueError as e:
                say("ERROR", seq, str(e).replace("\n", " "))
                continue
            with self.lock:
                self.frame = frame
                self.pending = (seq, arg)
        GLib.idle_add(loop.quit)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port (reported in READY)")
    p.add_argument("--mount", default="/cam")
    p.add_argument("--image", help="initial picture (default: black)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--fit", choices=["scale", "center"], default="scale")
    p.add_argument("--codec", choices=["h264", "mjpeg"], default="h264")
    p.add_argument("--keyint", type=int, default=5, help="frames between H.264 keyframes")
    p.add_argument("--bitrate", type=int, default=1024, help="kbit/s for x264enc")
    p.add_argument("--jpeg-quality", type=int, default=85)
    p.add_argument("--transports", default="tcp", help="tcp, udp or tcp,udp (UDP ports on 127.0.0.1)")
    p.add_argument("--user", help="require RTSP basic auth with this user (needs --password)")
    p.add_argument("--password")
    args = p.parse_args()

    Gst.init(None)
    cam = Camera(args)
    if args.image:
        try:
            cam.frame = decode_image(args.image, args.width, args.height, args.fit)
        except ValueError as e:
            say("ERROR", 0, str(e))
            return 2

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(cam.launch_string())
    factory.set_shared(True)  # one encoder for every client; late joiners wait <= keyint frames
    protocols = GstRtsp.RTSPLowerTrans(0)
    for t in args.transports.split(","):
        protocols |= {"tcp": GstRtsp.RTSPLowerTrans.TCP, "udp": GstRtsp.RTSPLowerTrans.UDP}[t.strip()]
    factory.set_protocols(protocols)
    if "udp" in args.transports:
        pool = GstRtspServer.RTSPAddressPool()
        pool.add_range("127.0.0.1", "127.0.0.1", 40000, 60000, 0)  # ttl 0: unicast, bound to loopback
        factory.set_address_pool(pool)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(perms)
    factory.connect("media-configure", cam.on_media_configure)
    server.get_mount_points().add_factory(args.mount, factory)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        say("ERROR", 0, f"cannot listen on 127.0.0.1:{args.port}")
        return 3
    port = server.get_bound_port()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, loop.quit)
    threading.Thread(target=cam.pump, name="pump", daemon=True).start()
    threading.Thread(target=cam.commands, args=(loop,), name="stdin", daemon=True).start()
    say("READY", port, f"rtsp://127.0.0.1:{port}{args.mount}")
    loop.run()
    cam.stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
