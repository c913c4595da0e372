"""The import rules of DESIGN §9, checked on the source, and a light card-only daemon."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "drivers", "recognition", "sync", "config")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules() -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): imports_of(p) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def users_of(prefix: str) -> set[str]:
    return {f for f, names in modules().items() if any(n == prefix or n.startswith(prefix + ".") for n in names)}


def test_each_library_stays_in_its_package() -> None:
    assert users_of("paho") == {"sync/mqtt_client.py"}
    assert {f.split("/")[0] for f in users_of("serial") | users_of("pymodbus") | users_of("onvif")} == {"drivers"}
    assert {f.split("/")[0] for f in users_of("osdp") | users_of("osdp_sys")} == {"drivers"}
    assert {f.split("/")[0] for f in users_of("face_recognition") | users_of("dlib")} == {"recognition"}
    assert users_of("face_recognition") == {"recognition/faces.py"}
    capture = {f for f in users_of("cv2") if "VideoCapture" in (ROOT / f).read_text()}
    assert {f.split("/")[0] for f in capture} == {"drivers"}


def test_drivers_recognition_sync_import_only_config_and_events() -> None:
    for f, names in modules().items():
        pkg = f.split("/")[0]
        if pkg not in ("drivers", "recognition", "sync"):
            continue
        ours = {n for n in names if n.split(".")[0] in PACKAGES and n.split(".")[0] != pkg}
        assert ours <= {"config.models", "drivers.events"}, (f, ours)
    access = imports_of(ROOT / "gateway" / "access.py")
    assert not {n for n in access if n.split(".")[0] in PACKAGES}, "the decision module imports nothing of ours"


def test_a_card_only_gateway_loads_no_face_or_video_library() -> None:
    heavy = "{'dlib', 'cv2', 'face_recognition'}"
    code = f"import sys, gateway.cli, gateway.app, gateway.api.app; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
