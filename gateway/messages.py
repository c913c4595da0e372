"""Words for codes (reasons, methods, errors, audit actions, column headers) in the page's languages.

One catalogue per language, `gateway/web/i18n/<lang>/codes.json`, shared by the web page (served as a
static file) and the server (exports). A code without a word shows as itself, never as an error.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Literal

Lang = Literal["zh-CN", "en"]
LANGS: tuple[Lang, ...] = ("zh-CN", "en")
DEFAULT_LANG: Lang = "en"
CATALOGUES = Path(__file__).resolve().parent / "web" / "i18n"


def catalogue_path(lang: str) -> Path:
    return CATALOGUES / lang / "codes.json"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The flat key -> text table of `lang` (read once per process)."""
    if lang not in LANGS:
        raise ValueError(f"no catalogue for {lang!r}; languages: {', '.join(LANGS)}")
    data = json.loads(catalogue_path(lang).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{catalogue_path(lang)} must be a flat JSON object of texts")
    return data


def word(lang: str, key: str, fallback: str | None = None) -> str:
    """The text of `key` in `lang`; else `fallback`; else the key itself."""
    text = catalogue(lang if lang in LANGS else DEFAULT_LANG).get(key)
    if text is not None:
        return text
    return key if fallback is None else fallback


def _match(tag: str) -> Lang | None:
    primary = tag.strip().lower().split("-")[0]
    return "zh-CN" if primary == "zh" else "en" if primary == "en" else None


def pick_lang(query_lang: str | None, accept_language: str | None) -> Lang:
    """`lang` from the query when it names a language we have, else the browser's most preferred one
    we have (Accept-Language, by q), else English."""
    if query_lang and (chosen := _match(query_lang)):
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")[:20]):  # a header is short; do not loop on junk
        tag, _, params = part.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag))
    for q, _, tag in sorted(ranked):
        if q < 0 and (chosen := _match(tag)):
            return chosen
    return DEFAULT_LANG
