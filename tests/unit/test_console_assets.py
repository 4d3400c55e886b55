"""The console's static files hang together: every label exists in French and English, every
module and asset it loads exists, and packaging ships them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from core.domain import DocumentStatus
from serving.console import STATIC
from tests.support.console_labels import page_labels

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(STATIC.glob("*.js"))


def dictionaries() -> dict[str, set[str]]:
    source = (STATIC / "i18n.js").read_text()
    body = source[source.index("const STRINGS = {") : source.index("\n};")]
    _, en, fr = re.split(r"^  (?:en|fr): \{$", body, flags=re.M)
    key = re.compile(r'^    (?:"([\w.]+)"|(\w+)): ', re.M)
    return {
        lang: {a or b for a, b in key.findall(block)} for lang, block in (("en", en), ("fr", fr))
    }


def used_keys() -> set[str]:
    keys: set[str] = set()
    for script in SCRIPTS:
        keys |= set(re.findall(r'\bt\("([\w.]+)"', script.read_text()))
        # t(`status.${...}`): every status the API or the console can show
        if "t(`status.${" in script.read_text():
            keys |= {f"status.{s}" for s in STATUSES}
    keys |= set(re.findall(r'data-i18n="([\w.]+)"', (STATIC / "index.html").read_text()))
    return keys


# Every document status the API returns, and the console's own upload and job phases.
STATUSES = {s.value for s in DocumentStatus} | {
    "uploading",
    "parsing",
    "loading",
    "indexing",
    "removing",
    "duplicate",
}


def test_french_and_english_have_the_same_labels() -> None:
    langs = dictionaries()
    assert langs["en"] and langs["en"] == langs["fr"]


PAGE_MODULES = [p for p in SCRIPTS if "const LABELS = {" in p.read_text()]


def test_the_pages_with_their_own_labels_are_found() -> None:
    assert {"people.js", "sources.js", "traces.js"} <= {p.name for p in PAGE_MODULES}


@pytest.mark.parametrize("module", PAGE_MODULES, ids=lambda p: p.name)
def test_a_page_keeps_the_same_labels_in_french_and_english(module: Path) -> None:
    found = page_labels(module.read_text())
    assert found["en"] and found["en"] == found["fr"]


def test_every_label_the_console_uses_exists() -> None:
    keys = used_keys()
    assert {"login.title", "ask.notFound", "rel.unavailable"} <= keys
    assert keys - dictionaries()["en"] == set()


def test_every_module_and_asset_the_console_loads_exists() -> None:
    for script in SCRIPTS:
        for target in re.findall(r'^import .* from "\./([\w.]+)";$', script.read_text(), re.M):
            assert (STATIC / target).is_file(), f"{script.name} imports missing {target}"
    html = (STATIC / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="/console/([\w.]+)"', html)
    assert "app.js" in assets and "console.css" in assets
    assert all((STATIC / a).is_file() for a in assets)


def test_nothing_is_loaded_from_another_origin_and_nothing_is_parsed_as_html() -> None:
    for path in [*SCRIPTS, STATIC / "index.html", STATIC / "console.css"]:
        text = path.read_text()
        assert not re.search(r"https?://", text), f"{path.name} refers to another origin"
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path.name


def test_packaging_ships_every_console_file() -> None:
    """setuptools globs package-data relative to the package folder ("*" never crosses "/")."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    package = STATIC.parent
    shipped = {
        path
        for pattern in package_data.get("*", []) + package_data.get("serving.console", [])
        for path in package.glob(pattern)
    }
    assert set(STATIC.iterdir()) <= shipped
