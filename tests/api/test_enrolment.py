"""Enrolment in one step (POST /enrolments): tenant, cards and photos all stored, or nothing (issue 11)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from testing.faces import faces_dir_path
from tests.api.conftest import Api

pytestmark = pytest.mark.slow  # the api fixture runs the daemon

T = "/api/v1"
LFW = faces_dir_path() / "lfw_subset"


def photo(person: str, n: int) -> tuple[str, tuple[str, bytes, str]]:
    path = sorted((LFW / person).glob("*.jpg"))[n]
    return "photos", (path.name, path.read_bytes(), "image/jpeg")


def stored(api: Api) -> tuple[int, int, int]:
    db = sqlite3.connect(api.data_dir / "gateway.sqlite3")
    return tuple(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("tenants", "cards", "face_templates"))  # type: ignore[return-value]


def tenant(tid: str, permit: str) -> str:
    return json.dumps({"id": tid, "name": "王芳", "permit_number": permit, "valid_to": "2030-01-01", "room": "302"})


def test_a_complete_enrolment_stores_everything_at_once(api: Api) -> None:
    admin = api.client("admin")
    r = admin.post(f"{T}/enrolments", data={"tenant": tenant("T1", "4401"), "cards": "[305419896, 77]"},
                   files=[photo("Kofi_Annan", 0), photo("Kofi_Annan", 1)])  # fmt: skip
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["id"], body["name"], body["cards"], body["face_templates"]) == ("T1", "王芳", [77, 305419896], 2)
    assert stored(api) == (1, 2, 2)
    assert api.client("police").post(f"{T}/enrolments", data={"tenant": tenant("T9", "9")}).status_code == 403


def test_a_failed_enrolment_lists_every_problem_and_leaves_nothing(api: Api) -> None:
    admin = api.client("admin")
    assert admin.post(f"{T}/enrolments", data={"tenant": tenant("T1", "4401"), "cards": "[77]"}).status_code == 201
    before = stored(api)
    # A card another tenant holds: a conflict, nothing stored (the tenant is not created without its card).
    r = admin.post(f"{T}/enrolments", data={"tenant": tenant("T2", "4402"), "cards": "[77, 78]"})
    assert r.status_code == 409
    assert [p["field"] for p in r.json()["error"]["problems"]] == ["cards[0]"]
    # A bad field, a bad card and a photo of someone else: every problem named, nothing stored.
    bad = json.dumps({"id": "T3", "name": "", "permit_number": "4403", "valid_to": "2030-01-01"})
    r = admin.post(f"{T}/enrolments", data={"tenant": bad, "cards": "[-1]"})
    assert r.status_code == 422
    assert {p["field"] for p in r.json()["error"]["problems"]} == {"tenant.name", "cards[0]"}
    r = admin.post(f"{T}/enrolments", data={"tenant": tenant("T4", "4404")},
                   files=[photo("Kofi_Annan", 0), photo("Kofi_Annan", 1), photo("Serena_Williams", 0)])  # fmt: skip
    assert r.status_code == 422
    verdicts = r.json()["error"]["verdicts"]
    assert [v["reason"] for v in verdicts] == ["ok", "ok", "not_the_same_person"]
    assert [p["field"] for p in r.json()["error"]["problems"]] == ["photos[2]"]
    assert stored(api) == before
    assert admin.get(f"{T}/tenants/T2").status_code == 404 and admin.get(f"{T}/tenants/T4").status_code == 404
