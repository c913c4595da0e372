"""Benchmark (a): 1:N match time of one probe against 10,000 and 100,000 templates, one thread.

Templates are real dlib templates of lfw_subset photos plus gaussian noise (sigma 0.06 per value,
~0.68 from their source: as far apart as different people), probes are real templates plus a
little noise (sigma 0.03). Times TemplateIndex.match(), as the pipeline calls it.

    .venv/bin/python -m bench.face_match [--probes 2000] [--load]

--load runs the match while `cores` processes encode faces non-stop, as the pipeline's workers do.
"""

from __future__ import annotations

import os

# One BLAS thread: the pipeline's result thread matches while both cores run dlib workers, so a
# multi-threaded BLAS would only steal from them. Must be set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from multiprocessing.synchronize import Event  # noqa: E402

import numpy as np  # noqa: E402

from recognition.faces import decode_image, encode, locate  # noqa: E402
from recognition.index import TemplateIndex  # noqa: E402
from testing.faces import faces_dir_path  # noqa: E402


def real_templates(count: int) -> np.ndarray:
    photos = sorted((faces_dir_path() / "lfw_subset").glob("*/*.jpg"))[::5][:count]
    out = []
    for photo in photos:
        rgb = decode_image(photo.read_bytes())
        boxes = locate(rgb, upsample=1)
        if boxes:
            out.append(encode(rgb, [max(boxes, key=lambda b: b[1] - b[3])])[0])
    return np.stack(out)


def blas_info() -> str:
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    config = blas.get("openblas configuration", "")
    return f"{blas['name']} {blas['version']} ({config}), OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"


def time_probes(index: TemplateIndex, probes: np.ndarray) -> np.ndarray:
    for p in probes[:50]:  # warm caches and code paths
        index.match(p, 0.5)
    times = np.empty(len(probes))
    for i, p in enumerate(probes):
        t = time.perf_counter_ns()
        index.match(p, 0.5)
        times[i] = time.perf_counter_ns() - t
    return times / 1e6


def naive_ms(vectors: np.ndarray, probe: np.ndarray, repeat: int = 20) -> float:
    """The textbook way (face_recognition.face_distance): float64 np.linalg.norm over the rows."""
    matrix = vectors.astype(np.float64)
    t = time.perf_counter()
    for _ in range(repeat):
        np.argmin(np.linalg.norm(matrix - probe, axis=1))
    return (time.perf_counter() - t) / repeat * 1e3


def _busy_encoding(stop: Event) -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[115:365, 195:445] = decode_image(sorted((faces_dir_path() / "lfw_subset").glob("*/*.jpg"))[0].read_bytes())
    while not stop.is_set():
        encode(frame, locate(frame))


@contextmanager
def dlib_load(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_busy_encoding, args=(stop,)) for _ in range(os.cpu_count() or 1)]
    for p in procs:
        p.start()
    time.sleep(3)  # let them load the models and start encoding
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--load", action="store_true", help="match while every core runs dlib encoding")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base = real_templates(40)
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}; BLAS {blas_info()}")
    load = f"while {os.cpu_count()} processes encode faces" if args.load else "idle machine"
    print(f"{len(base)} real templates as seeds; {args.probes} probes per size; single thread; {load}")
    with dlib_load(args.load):
        run_sizes(base, rng, args.probes)


def run_sizes(base: np.ndarray, rng: np.random.Generator, n_probes: int) -> None:
    for size in (10_000, 100_000):
        vectors = base[rng.integers(0, len(base), size)] + rng.normal(0, 0.06, (size, 128))
        index = TemplateIndex()
        t = time.perf_counter()
        index.replace_all((f"t{i // 3:06d}", v) for i, v in enumerate(vectors))  # 3 templates per tenant
        build_s = time.perf_counter() - t
        probes = (base[rng.integers(0, len(base), n_probes)] + rng.normal(0, 0.03, (n_probes, 128))).astype(np.float32)
        ms = time_probes(index, probes)
        p50, p99 = np.percentile(ms, [50, 99])
        print(
            f"{size:>7,} templates ({len(index.tenants()):,} tenants, {index_mb(index):.0f} MB): "
            f"p50 {p50:.3f} ms  p99 {p99:.3f} ms  max {ms.max():.3f} ms  "
            f"| build {build_s:.2f} s | naive float64 norm {naive_ms(vectors, probes[0]):.1f} ms"
        )


def index_mb(index: TemplateIndex) -> float:
    return len(index) * 128 * 4 / 1e6


if __name__ == "__main__":
    main()
