"""`make run` says where to open the console before starting (issue #21: it said nothing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_prints_the_console_address() -> None:
    dry = subprocess.run(
        ["make", "-n", "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "GEDRAG_API__PORT": "9123"},
        check=True,
    )
    recipe = dry.stdout.splitlines()
    echo = next(i for i, line in enumerate(recipe) if "web console at http://" in line)
    assert echo < next(i for i, line in enumerate(recipe) if line.endswith("gedrag up"))
    said = subprocess.run(
        ["sh", "-c", recipe[echo]],
        capture_output=True,
        text=True,
        env={"GEDRAG_API__PORT": "9123"},
        check=True,
    ).stdout
    assert "http://127.0.0.1:9123/" in said
