"""The console's traces page (``serving/console/static/traces.js``) keeps its own labels: both
languages have every one the page shows, for every arm and experiment state the API answers,
and the page is reachable from the navigation and the Ask page's thumbs come from it."""

from __future__ import annotations

import re
import typing

import pytest

from serving.console import STATIC
from serving.monitoring_api import ExperimentPublic
from stores.catalog.traces import ARMS
from tests.support.console_labels import page_labels

pytestmark = pytest.mark.unit

SCRIPT = (STATIC / "traces.js").read_text()


def labels() -> dict[str, set[str]]:
    return page_labels(SCRIPT)


def test_every_label_the_page_shows_exists() -> None:
    used = set(re.findall(r'\btr\("([\w.]+)"', SCRIPT))
    used |= {f"arm.{a}" for a in ARMS}
    used |= {
        f"state.{s}" for s in typing.get_args(ExperimentPublic.model_fields["state"].annotation)
    }
    used |= {f"rating.{r}" for r in ("up", "down")} | {
        f"filter.{f}" for f in ("up", "down", "rated", "unrated")
    }
    assert {"title", "replay", "arm.canary", "state.rolled_back", "driftMake"} <= used
    assert used - labels()["en"] == set()


def test_the_page_is_reachable_and_the_ask_page_rates_answers() -> None:
    html = (STATIC / "index.html").read_text()
    app = (STATIC / "app.js").read_text()
    ask = (STATIC / "ask.js").read_text()
    assert 'href="#/traces"' in html
    assert 'from "./traces.js"' in app and "renderTraces(main)" in app
    assert (
        'import { feedbackControls } from "./traces.js";' in ask and "feedbackControls(turn)" in ask
    )
    assert 'event === "done"' in ask and "trace_id" in ask
