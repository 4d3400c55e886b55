"""The console's sources page (``serving/console/static/sources.js``) keeps its own labels: both
languages have every one the page shows, for every status, outcome and kind the API answers."""

from __future__ import annotations

import re
import typing

import pytest

from serving.console import STATIC
from serving.sources_api import SourcePublic, Status
from stores.catalog.sources import OUTCOMES
from tests.support.console_labels import page_labels

pytestmark = pytest.mark.unit

SCRIPT = (STATIC / "sources.js").read_text()


def labels() -> dict[str, set[str]]:
    return page_labels(SCRIPT)


def test_every_label_the_page_shows_exists() -> None:
    used = set(re.findall(r'\btr\("([\w.]+)"', SCRIPT))
    used |= {f"status.{s}" for s in typing.get_args(Status)}
    used |= {f"outcome.{o}" for o in OUTCOMES}
    kinds = typing.get_args(SourcePublic.model_fields["kind"].annotation)
    used |= {f"kind.{k}" for k in kinds}
    assert {"title", "syncNow", "status.failing", "outcome.failed", "kind.imap"} <= used
    assert used - labels()["en"] == set()


def test_the_page_is_reachable_from_the_navigation() -> None:
    html = (STATIC / "index.html").read_text()
    app = (STATIC / "app.js").read_text()
    assert 'href="#/sources"' in html
    assert 'from "./sources.js"' in app and "renderSources(main)" in app
