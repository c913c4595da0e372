"""`accessgw face add / import`: a verdict per photo, all or nothing, templates not photos."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageFilter

from testing.faces import faces_dir_path

pytestmark = pytest.mark.slow  # `accessgw face add/import` with dlib, ~10 s each

ROOT = Path(__file__).resolve().parents[2]
FACES = faces_dir_path()
LFW = FACES / "lfw_subset"
EXAMPLES = FACES / "face_recognition_repo" / "examples"


def accessgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=180,
                          cwd=ROOT)  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({"gateway_id": "face-cli", "data_dir": str(tmp_path / "data")}))
    for tid in ("t1", "t2"):
        r = accessgw("tenant", "add", "--config", str(path), "--id", tid, "--name", tid, "--permit", f"P-{tid}",
                     "--valid-to", "2030-01-01")  # fmt: skip
        assert r.returncode == 0, r.stderr
    return path


def templates(config: Path) -> int:
    db = sqlite3.connect(yaml.safe_load(config.read_text())["data_dir"] + "/gateway.sqlite3")
    return db.execute("SELECT COUNT(*) FROM face_templates").fetchone()[0]


def test_every_bad_photo_gets_its_reason_and_nothing_is_stored(config: Path, tmp_path: Path) -> None:
    person = sorted(LFW.iterdir())[0]
    good = sorted(person.glob("*.jpg"))[0]
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    blurred = tmp_path / "blurred.jpg"
    buf = io.BytesIO()
    Image.open(good).filter(ImageFilter.GaussianBlur(4)).save(buf, "JPEG")
    blurred.write_bytes(buf.getvalue())
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(b"\xff\xd8" + bytes(11_000_000))
    landscape = tmp_path / "landscape.png"
    Image.linear_gradient("L").resize((640, 480)).convert("RGB").save(landscape)
    small_face = LFW / "Andre_Agassi" / sorted(p.name for p in (LFW / "Andre_Agassi").glob("*.jpg"))[2]
    cases = {
        str(text): "unreadable",
        str(huge): "too_large",
        str(landscape): "no_face",
        str(small_face): "face_too_small",
        str(truncated): "unreadable",
        str(EXAMPLES / "two_people.jpg"): "multiple_faces",
        str(blurred): "too_blurry",
        str(good): "ok",
    }
    result = accessgw("face", "add", "--config", str(config), "--tenant", "t1", *list(cases)[:5])
    assert result.returncode == 1, result.stderr
    more = accessgw("face", "add", "--config", str(config), "--tenant", "t1", *list(cases)[5:])
    assert more.returncode == 1, more.stderr
    result.stdout += more.stdout
    lines = [line for line in result.stdout.splitlines() if line[:4] in ("ok  ", "FAIL")]
    assert len(lines) == len(cases), result.stdout
    for line, (path, reason) in zip(lines, cases.items(), strict=True):
        assert path in line and f": {reason} - " in line, line
    assert "nothing stored" in result.stderr
    assert templates(config) == 0

    too_many = accessgw("face", "add", "--config", str(config), "--tenant", "t1", *[str(good)] * 6)
    assert too_many.returncode == 1 and "1 to 5 photos" in too_many.stderr
    unknown = accessgw("face", "add", "--config", str(config), "--tenant", "ghost", str(good))
    assert unknown.returncode == 1 and "unknown tenant" in unknown.stderr
    assert templates(config) == 0


def test_add_and_bulk_import(config: Path, tmp_path: Path) -> None:
    people = sorted(LFW.iterdir())[:2]
    ok = accessgw("face", "add", "--config", str(config), "--tenant", "t1",
                  *map(str, sorted(people[0].glob("*.jpg"))[:3]))  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3 face template(s) stored for tenant t1" in ok.stdout
    bulk = tmp_path / "bulk"
    for tid, person in (("t2", people[1]), ("ghost", people[1])):
        (bulk / tid).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:2]:
            (bulk / tid / photo.name).write_bytes(photo.read_bytes())
    imported = accessgw("face", "import", "--config", str(config), str(bulk))
    assert imported.returncode == 1  # one folder names no tenant
    assert "1 tenant(s) enrolled, 1 refused, of 2" in imported.stdout and "refused ghost" in imported.stdout
    assert templates(config) == 5
    stored = sqlite3.connect(yaml.safe_load(config.read_text())["data_dir"] + "/gateway.sqlite3")
    assert {len(row[0]) for row in stored.execute("SELECT embedding FROM face_templates")} == {512}  # 128 float32
