"""Suites "shipped" with gedrag for a test: evaluation.suites.SUITES_DIR pointed at a folder
holding the tiny suite (tests/fixtures/eval_suite) and one whose data the server lacks, as a
server without the shared datasets has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation import suites

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "fixtures" / "eval_suite"


def ship_suites(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tiny`` (available) and ``absent`` (no data) as the known suites, until the test ends."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = (TINY / "suite.yaml").read_text()
    # Shipped descriptors name their data from the repository root.
    (folder / "tiny.yaml").write_text(
        descriptor.replace("path: .", f"path: {TINY.relative_to(REPO)}")
    )
    (folder / "absent.yaml").write_text(
        "name: absent\ndescription: data not downloaded\nformat: ragas\npath: no/such/folder\n"
    )
    monkeypatch.setattr(suites, "SUITES_DIR", folder)
    return folder
