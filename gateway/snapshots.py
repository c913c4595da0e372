"""JPEG snapshots of face entries and video alerts, on disk under data_dir.

An event refers to its snapshot by API path; the file is named by the
event's id inside a folder per UTC day, so retention deletes whole days.
"""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime
from pathlib import Path


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
        return f"/api/v1/{kind}/{event_id}/snapshot"

    def find(self, event_id: str) -> Path | None:
        for day in sorted(self.root.glob("*"), reverse=True) if self.root.exists() else []:
            candidate = day / f"{event_id}.jpg"
            if candidate.exists():
                return candidate
        return None

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
