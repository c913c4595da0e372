"""A small file system that really fills up: a tmpfs mounted for a test or a benchmark (needs root),
and a filler file that takes every free block of it.

    with small_tmpfs(tmp / "data", "8m"):
        filler = fill_up(tmp / "data")      # ENOSPC for everyone now
        ...
        filler.unlink()                     # space is back
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

FILLER_NAME = "filler.bin"


def can_mount() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "8m") -> Iterator[Path]:
    """`mount -t tmpfs -o size=SIZE tmpfs PATH` for the duration; unmounted (lazily if still busy) after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True,
                   capture_output=True)  # fmt: skip
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_up(folder: Path, name: str = FILLER_NAME) -> Path:
    """Write a file in `folder` until the file system says ENOSPC (big chunks, then single blocks)."""
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 20, 64 << 10, 4 << 10, 512):
            block = b"\xa5" * chunk
            try:
                while os.write(fd, block) == chunk:
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
