"""The message catalogues: every code the gateway can produce has a word in every language (issue 11).

The codes are collected from the code itself (its enums, Literals and constants, and the literal
arguments of the calls that make errors, alerts and audit rows), so a new code without a word fails here.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

from config.models import DoorConfig
from gateway.access import Reason
from gateway.api import schemas
from gateway.api.exports import AUDIT_COLUMNS, ENTRY_COLUMNS
from gateway.device_alerts import ALERT_OF
from gateway.messages import LANGS, catalogue, catalogue_path, pick_lang, word
from gateway.store.roster import STATUSES
from recognition.quality import REASONS as VERDICTS

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"
# DESIGN §5 names these; a kind the code does not raise yet still needs its word.
DESIGN_ALERT_KINDS = {"stranger", "card_face_mismatch", "watchlist_hit", "door_forced", "door_held_open", "fire_alarm",
                      "reader_offline", "camera_offline", "io_offline", "tamper", "repeated_denials"}  # fmt: skip
DESIGN_SEVERITIES = {"info", "warning", "critical"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def calls(folder: Path) -> Iterator[tuple[str, ast.Call]]:
    """(name of the called function, call) of every call in the package's source."""
    for path in folder.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                yield name, node


def texts(node: ast.expr | None) -> list[str]:
    """The strings an argument can be: a literal, either branch of `a if c else b`, or an f-string as a
    pattern (its holes as "*")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return texts(node.body) + texts(node.orelse)
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)]
    return []


def arg(call: ast.Call, index: int) -> ast.expr | None:
    return call.args[index] if len(call.args) > index else None


def error_codes() -> set[str]:
    codes: set[str] = set()
    for name, call in calls(GATEWAY):
        if name == "ApiError":
            codes.update(texts(arg(call, 1)))
        elif name == "error_body":
            codes.update(texts(arg(call, 0)))
        elif name == "get" and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Dict):
            codes.update(t for v in call.func.value.values for t in texts(v))  # {404: "not_found", …}.get(s, …)
            codes.update(texts(arg(call, 1)))
    for path in (GATEWAY / "api").rglob("*.py"):  # problem lists: {"field": …, "code": "invalid", …}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value == "code":
                        codes.update(texts(v))
    return codes


def alert_parts() -> tuple[set[str], set[str]]:
    """(kinds, severities) of every alert the gateway raises."""
    kinds, severities = set(ALERT_OF.values()), set()
    for name, call in calls(GATEWAY):
        if name == "AlertDraft":
            kinds.update(texts(arg(call, 1)))
            severities.update(texts(arg(call, 3)))
        elif name == "AlertChange":
            kinds.update(texts(arg(call, 0)))
            severities.update(texts(arg(call, 2)))
        elif name == "_alert":
            kinds.update(texts(arg(call, 0)))
            severities.update(texts(arg(call, 1)))
    return kinds, severities


def audit_actions() -> set[str]:
    """Actions of audit(…, actor, action, …), start_row(…), and the routes' audit_read/_audit_police helpers."""
    positions = {"audit": 2, "start_row": 2, "audit_read": 2, "_audit_police": 2, "Export": 0}
    actions: set[str] = set()
    for name, call in calls(GATEWAY):
        if name in positions:
            actions.update(texts(arg(call, positions[name])))
    return actions


def test_both_catalogues_have_the_same_keys_and_no_empty_text() -> None:
    zh, en = catalogue("zh-CN"), catalogue("en")
    assert set(zh) == set(en), set(zh) ^ set(en)
    for lang in LANGS:
        raw = json.loads(catalogue_path(lang).read_text(encoding="utf-8"))
        assert all(isinstance(v, str) and v.strip() == v and v for v in raw.values()), lang
    # The Chinese catalogue is Chinese (a copy of the English would pass the key check).
    untranslated = [k for k, v in zh.items() if not CJK.search(v)]
    assert untranslated == [], untranslated


@pytest.mark.parametrize("lang", LANGS)
def test_every_code_the_gateway_produces_has_a_word(lang: str) -> None:
    table = catalogue(lang)
    kinds, severities = alert_parts()
    wanted = {
        "reason": {r.value for r in Reason},
        "method": set(get_args(schemas.Method)),
        "decision": set(get_args(schemas.Decision)),
        "role": set(get_args(schemas.Role)),
        "status": set(STATUSES) | set(get_args(schemas.TenantStatus)),
        "alert.state": set(get_args(schemas.AlertState)),
        "door.mode": set(get_args(DoorConfig.model_fields["mode"].annotation)),
        "verdict": set(VERDICTS),
        "error": error_codes(),
        "alert": kinds | DESIGN_ALERT_KINDS,
        "severity": severities | DESIGN_SEVERITIES,
        "column": set(ENTRY_COLUMNS) | set(AUDIT_COLUMNS),
        "sheet": {t for name, call in calls(GATEWAY) if name == "Export" for t in texts(arg(call, 2))},
    }
    # The collectors found what they should (a broken collector must not pass by finding nothing).
    assert {"unauthenticated", "forbidden", "not_found", "invalid_request", "busy", "too_many_rows"} <= wanted["error"]
    assert {"stranger", "door_forced", "camera_offline"} <= kinds and {"critical", "warning"} <= severities
    assert wanted["sheet"] == {"entries", "audit"}
    missing = sorted(f"{family}.{code}" for family, codes in wanted.items() for code in codes
                     if f"{family}.{code}" not in table)  # fmt: skip
    assert missing == [], missing


@pytest.mark.parametrize("lang", LANGS)
def test_every_audit_action_has_a_word(lang: str) -> None:
    keys = {k[len("audit.") :] for k in catalogue(lang) if k.startswith("audit.")}
    actions = audit_actions()
    assert {"tenant.update", "entries.search", "card.bind", "door.open", "entries.export", "audit.export"} <= actions
    missing = []
    for action in actions:
        if "*" in action:  # f"tenant.{action}": some known action must fit it
            pattern = re.compile(re.escape(action).replace(r"\*", "[a-z_]+"))
            if not any(pattern.fullmatch(k) for k in keys):
                missing.append(action)
        elif action not in keys:
            missing.append(action)
    for verb in ("suspend", "revoke", "activate"):  # the status routes' f-string
        assert f"tenant.{verb}" in keys
    for kind in ("entries", "alerts"):  # the snapshot routes' f-string
        assert f"{kind}.snapshot" in keys
    assert missing == [], missing


@pytest.mark.parametrize(
    ("query", "header", "lang"),
    [
        (None, None, "en"),
        (None, "", "en"),
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        (None, "zh-TW", "zh-CN"),
        (None, "zh", "zh-CN"),
        (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, "fr-FR, zh-CN;q=0.5, en;q=0.4", "zh-CN"),
        (None, "en;q=0.2, zh;q=0.9", "zh-CN"),
        (None, "zh;q=0, en;q=0.1", "en"),
        (None, "fr, de", "en"),
        (None, "garbage;;;q=x,,", "en"),
        ("en", "zh-CN", "en"),
        ("zh-CN", None, "zh-CN"),
        ("zh-cn", "en", "zh-CN"),
        ("klingon", "zh-CN", "zh-CN"),
    ],
)
def test_pick_lang(query: str | None, header: str | None, lang: str) -> None:
    assert pick_lang(query, header) == lang


def test_word_falls_back_to_the_given_text_then_to_the_key() -> None:
    assert word("zh-CN", "reason.unknown_card", "x") == "未登记的卡"
    assert word("zh-CN", "method.face") == "人脸"
    assert (word("zh-CN", "decision.granted"), word("zh-CN", "decision.denied")) == ("允许", "拒绝")
    assert word("en", "reason.unknown_card") == "Unknown card"
    assert word("en", "reason.new_code", "new_code") == "new_code"
    assert word("en", "reason.new_code") == "reason.new_code"
    assert word("xx", "decision.granted") == "Granted"  # an unknown language reads English
    assert catalogue("en") is catalogue("en")  # read once
