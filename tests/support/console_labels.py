"""The labels a console page module keeps for itself (``const LABELS = {en: {...}, fr: {...}}``),
per language: what its tests compare."""

from __future__ import annotations

import re


def page_labels(script: str) -> dict[str, set[str]]:
    body = script[script.index("const LABELS = {") : script.index("\n};")]
    _, en, fr = re.split(r"^  (?:en|fr): \{$", body, flags=re.M)
    key = re.compile(r'^    (?:"([\w.]+)"|(\w+)): ', re.M)
    return {
        lang: {a or b for a, b in key.findall(block)} for lang, block in (("en", en), ("fr", fr))
    }
