"""The console's People and access page (``serving/console/static/people.js``) keeps its own
labels: both languages have every one the page shows, for every permission the API takes."""

from __future__ import annotations

import re
import typing

import pytest

from serving.console import STATIC
from serving.people_api import EntryModel
from tests.support.console_labels import page_labels

pytestmark = pytest.mark.unit

SCRIPT = (STATIC / "people.js").read_text()


def labels() -> dict[str, set[str]]:
    return page_labels(SCRIPT)


def test_every_label_the_page_shows_exists() -> None:
    used = set(re.findall(r'\btr\("([\w.]+)"', SCRIPT))
    used |= set(re.findall(r'"(col\.\w+)"', SCRIPT))
    permissions = typing.get_args(EntryModel.model_fields["permission"].annotation)
    used |= {f"perm.{p}" for p in permissions}
    assert {"title", "verify", "perm.manage", "col.actor", "saveAccess"} <= used
    assert used <= labels()["en"], used - labels()["en"]
