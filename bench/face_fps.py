"""Benchmark (b): frames per second of face detection + encoding on 640x480 frames, through FacePipeline.

Frames are lfw_subset photos (one face each) resized to --size px on a black 640x480 canvas, as the
RTSP test camera letterboxes them; a feeder offers a new frame every 2 ms, so the pipeline is never
idle and keeps only the newest. Counts frames analysed (detect on the downscaled frame, encode at full
resolution, match, track, emit) over --frames frames, with 2 workers and then 1.

    .venv/bin/python -m bench.face_fps [--frames 300] [--size 400] [--downscale 0.5]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

import numpy as np

from config.models import RecognitionConfig
from drivers.events import FaceSeen
from recognition.faces import analyse_frame
from recognition.index import TemplateIndex
from recognition.pipeline import FacePipeline
from recognition.quality import assess_photo
from testing.faces import faces_dir_path, on_canvas

WARM_FRAMES = 10


def frames(size: int, downscale: float) -> list[np.ndarray]:
    """One photo of each of the 20 people where exactly one face is found (no background faces)."""
    photos = sorted((faces_dir_path() / "lfw_subset").glob("*/*.jpg"))
    out: dict[str, np.ndarray] = {}
    for photo in photos:
        person = photo.parent.name
        if person not in out:
            frame = on_canvas(photo, size=size)
            if len(analyse_frame(frame, downscale, "hog")) == 1:
                out[person] = frame
    return list(out.values())


def roster() -> TemplateIndex:
    index = TemplateIndex()
    for person in sorted((faces_dir_path() / "lfw_subset").iterdir()):
        verdict = assess_photo((person / f"{person.name}_0001.jpg").read_bytes())
        if verdict.ok:
            index.add(person.name, [verdict.encoding])
    return index


def run(cfg: RecognitionConfig, index: TemplateIndex, images: list[np.ndarray], count: int) -> None:
    seen: list[FaceSeen] = []
    t = time.perf_counter()
    pipeline = FacePipeline(cfg, index, seen.append)
    pipeline.start()
    start_s = time.perf_counter() - t
    try:
        i = 0

        def feed_until(analysed: int) -> float:
            nonlocal i
            while pipeline.stats().frames_analysed < analysed:
                pipeline.feed("bench", images[i % len(images)], datetime.now(UTC), time.monotonic())
                i += 1
                time.sleep(0.002)
            return time.perf_counter()

        t0 = feed_until(WARM_FRAMES)
        before = pipeline.stats()
        t1 = feed_until(WARM_FRAMES + count)
        after = pipeline.stats()
    finally:
        pipeline.stop()
    analysed = after.frames_analysed - before.frames_analysed
    faces = after.faces_seen - before.faces_seen
    ms = {k: v.mean_s * 1e3 for k, v in after.timings.items()}
    print(
        f"workers {cfg.workers}: {analysed / (t1 - t0):5.1f} fps over {analysed} frames "
        f"({faces / analysed:.2f} faces/frame; {after.frames_dropped} offered frames dropped); "
        f"pool start {start_s:.1f} s\n"
        f"   mean per frame: detect {ms['detect']:.1f} ms, encode {ms['encode']:.1f} ms, "
        f"round trip {ms['round_trip']:.1f} ms, match+track+emit {ms['match_track']:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=400, help="photo size on the 640x480 canvas (LFW is 250)")
    parser.add_argument("--downscale", type=float, default=0.5)
    args = parser.parse_args()
    images = frames(args.size, args.downscale)
    index = roster()
    print(
        f"machine: {os.cpu_count()} cores; 640x480 frames, one face ~{args.size * 108 // 250} px wide; "
        f"HOG at downscale {args.downscale}; {len(images)} distinct frames; {len(index)} templates enrolled"
    )
    settings = {
        "as landed before issue 10 (5-point landmarks; the baseline, same run)": {"landmarks": 5},
        "the defaults (68-point landmarks)": {},
        "with recognition.mirror: true (face and mirror image)": {"mirror": True},
    }
    for label, overrides in settings.items():
        print(f"templates {label}:")
        for workers in (2, 1):
            cfg = RecognitionConfig(workers=workers, downscale=args.downscale, **overrides)
            run(cfg, index, images, args.frames)

if __name__ == "__main__":
    main()
