from __future__ import annotations

from pathlib import Path

import pytest

from testing.faces import faces_dir_path


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return faces_dir_path()
