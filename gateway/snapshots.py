"""JPEG snapshots of face entries and video alerts, on disk under data_dir.

An event refers to its snapshot by API path; the file is named by the
event's id inside a folder per UTC day, so retention deletes whole days.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from datetime import date, datetime
from pathlib import Path

# Event ids are ULIDs; anything else (a dot, a slash, a NUL) never reaches the file system.
EVENT_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def api_path(kind: str, event_id: str) -> str:
    """Where the API serves an event's snapshot: known before the file exists (it is written after the pulse)."""
    return f"/api/v1/{kind}/{event_id}/snapshot"


class SnapshotStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "snapshots"

    def path_of(self, event_id: str, day: date) -> Path:
        return self.root / day.isoformat() / f"{event_id}.jpg"

    def save(self, kind: str, event_id: str, ts: datetime, jpeg: bytes) -> str:
        """Write the file (atomically) and return the API path the event carries."""
        path = self.path_of(event_id, ts.date())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(jpeg)
        os.replace(tmp, path)
        return api_path(kind, event_id)

    def find(self, event_id: str) -> Path | None:
        """The event's snapshot: a regular file in a day folder, no symlink on the way, inside the root."""
        if not EVENT_ID.fullmatch(event_id) or not self.root.is_dir():
            return None
        root = self.root.resolve()  # the root itself may be a link the operator made (another disk)
        with os.scandir(root) as entries:
            days = sorted((e for e in entries if e.is_dir(follow_symlinks=False)), key=lambda e: e.name, reverse=True)
        for day in days:
            candidate = Path(day.path) / f"{event_id}.jpg"
            try:
                mode = candidate.lstat().st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and candidate.resolve().is_relative_to(root):
                return candidate
        return None

    def read(self, event_id: str) -> bytes | None:
        """The bytes of `find`'s file, opened without following links (a folder or file swapped in between)."""
        path = self.find(event_id)
        if path is None:
            return None
        try:
            day_fd = os.open(path.parent, _OPEN | os.O_DIRECTORY)
            try:
                fd = os.open(path.name, _OPEN, dir_fd=day_fd)
            finally:
                os.close(day_fd)
        except OSError:  # gone (pruned), or replaced by a link since `find`
            return None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SNAPSHOT_BYTES:
                return None
            return f.read(MAX_SNAPSHOT_BYTES + 1)[:MAX_SNAPSHOT_BYTES]

    def prune_before(self, day: date) -> tuple[int, int]:
        """Delete the folders of days before `day`; returns (folders, files) removed."""
        folders = files = 0
        if not self.root.exists():
            return 0, 0
        for folder in self.root.iterdir():
            try:
                folder_day = date.fromisoformat(folder.name)
            except ValueError:
                continue
            if folder_day < day:
                files += sum(1 for _ in folder.glob("*.jpg"))
                shutil.rmtree(folder)
                folders += 1
        return folders, files
